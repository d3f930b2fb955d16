"""Fit the story model (``services/dedup/data/story_model.yaml``) on the development streams.

Method, in three steps, each on the development data only (``stories/gva_dev.jsonl`` and the
29 labelled news pages, both in publication order):

1. *Rank*: every article is looked up in a window that holds the earlier articles filed under
   their gold story (teacher forcing); each candidate story gives one row of ``FEATURES``,
   labelled 1 when it is the article's gold story. An L2-regularised logistic regression
   (Newton's method) fits the rank weights.
2. *Decide*: the same pass again with the fitted rank; for each article with a candidate, the
   best-ranked story gives one row of ``DECISION_FEATURES``, labelled 1 when it is the gold
   story. A second logistic regression fits the decision weights.
3. *Threshold*: the full engine (copies, then stories) clusters the GVA stream online at each
   probability in ``THRESHOLDS``; the one with the best pairwise F1 is kept.

``--check`` also fits on each half of the GVA stream (by date) and scores the other half, to show
the figures are not those of a model that learnt its data by heart. Run with
``make bench-fit-story-model``; it rewrites the YAML only with ``--write``.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import yaml

from bench.storydata import Labelled, bcubed, cluster, dev_pages_stream, gold, gva_stream, pairwise
from services.dedup.engine import Decision, Deduplicator
from services.dedup.stories import (
    DECISION_FEATURES,
    FEATURES,
    MODEL_FILE,
    StoryModel,
    decision_features,
)

MODEL_PATH = Path(__file__).resolve().parents[1] / "services" / "dedup" / "data" / MODEL_FILE
THRESHOLDS = (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6)
HORIZON_HOURS = 84.0  # gold stories split where articles are 3 days apart; dates are days
L2 = 1e-3

Matrix = npt.NDArray[np.float64]


def fit_logistic(x: Matrix, y: npt.NDArray[np.float64], *, iterations: int = 50) -> Matrix:
    """Weights (intercept first) of an L2-regularised logistic regression, by Newton's method."""
    design = np.column_stack([np.ones(len(x)), x])
    weights = np.zeros(design.shape[1])
    ridge = L2 * np.eye(len(weights))
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-design @ weights))
        gradient = design.T @ (p - y) + L2 * weights
        hessian = (design * (p * (1 - p))[:, None]).T @ design + ridge
        step = np.linalg.solve(hessian, gradient)
        weights -= step
        if float(np.abs(step).max()) < 1e-8:
            break
    return weights


def _gold_decision(article_id: str, story: str) -> Decision:
    return Decision(article_id, story, None, False, "same_story", 0.0, None)


def teacher_forced_rows(
    streams: list[list[Labelled]], model: StoryModel, *, decision: bool
) -> tuple[Matrix, npt.NDArray[np.float64]]:
    """Rows of rank (``decision=False``) or decision features, every article filed under its
    gold story."""
    rows: list[npt.NDArray[np.float64]] = []
    labels: list[float] = []
    for stream in streams:
        engine = Deduplicator(model=model)
        for item in stream:
            probe = engine.probe(item.article)
            options = engine.story_options(probe)
            if decision and options:
                rows.append(decision_features(options))
                labels.append(float(options[0].story_id == item.story))
            elif not decision:
                for option in options:
                    rows.append(option.features)
                    labels.append(float(option.story_id == item.story))
            engine.file(probe, _gold_decision(item.article.article_id, item.story))
            engine.evict()
    return np.array(rows), np.array(labels)


def fit(streams: list[list[Labelled]], threshold_stream: list[Labelled]) -> StoryModel:
    blank = StoryModel(
        (0.0,) * (len(FEATURES) + 1), (0.0,) * (len(DECISION_FEATURES) + 1), 0.5, HORIZON_HOURS
    )
    x, y = teacher_forced_rows(streams, blank, decision=False)
    rank = tuple(float(w) for w in fit_logistic(x, y))
    print(f"  rank: {len(y)} article-story rows, {int(y.sum())} positive")
    ranked = StoryModel(rank, blank.decision_weights, 0.5, HORIZON_HOURS)
    x, y = teacher_forced_rows(streams, ranked, decision=True)
    decision = tuple(float(w) for w in fit_logistic(x, y))
    print(f"  decision: {len(y)} articles with a candidate, best story right for {int(y.sum())}")
    truth = gold(threshold_stream)
    best: tuple[float, float] = (-1.0, 0.5)
    for threshold in THRESHOLDS:
        model = StoryModel(rank, decision, threshold, HORIZON_HOURS)
        predicted = cluster(threshold_stream, Deduplicator(model=model))
        pw, b3 = pairwise(predicted, truth), bcubed(predicted, truth)
        print(f"  threshold {threshold:.2f}: pairwise {pw}   B-cubed {b3}")
        best = max(best, (pw.f1, threshold))
    return StoryModel(rank, decision, best[1], HORIZON_HOURS)


def as_yaml(model: StoryModel) -> str:
    header = (
        "# The story model of services/dedup/stories.py, written by bench/fit_story_model.py\n"
        f"# on {datetime.now(UTC).date().isoformat()} from the development data only:\n"
        "# shared/eval/stories/gva_dev.jsonl (SemEval-2018 Task 5 GVA corpus; evaluation only)\n"
        "# and shared/eval/neardup/news_pages_dev*.jsonl, streamed in publication order.\n"
        "# Method: L2-regularised logistic regressions (Newton's method), rank on every\n"
        "# candidate story with teacher forcing, decision on the best-ranked story; threshold\n"
        "# the best pairwise F1 of the online clustering of the GVA stream. Do not edit by hand.\n"
    )
    body = {
        "features": list(FEATURES),
        "rank_weights": [round(w, 6) for w in model.rank_weights],
        "decision_features": list(DECISION_FEATURES),
        "decision_weights": [round(w, 6) for w in model.decision_weights],
        "threshold": model.threshold,
        "horizon_hours": model.horizon_hours,
    }
    return header + yaml.safe_dump(body, sort_keys=False)


def check_halves(stream: list[Labelled]) -> None:
    """Fit on one half of the stream by date, score the other half."""
    half = len(stream) // 2
    for name, train, test in (
        ("first", stream[:half], stream[half:]),
        ("second", stream[half:], stream[:half]),
    ):
        print(f"fit on the {name} half ({len(train)} articles):")
        model = fit([train], train)
        predicted, truth = cluster(test, Deduplicator(model=model)), gold(test)
        print(
            f"  -> the other half ({len(test)}): pairwise {pairwise(predicted, truth)}"
            f"   B-cubed {bcubed(predicted, truth)}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--write", action="store_true", help=f"rewrite {MODEL_PATH.name}")
    parser.add_argument("--check", action="store_true", help="fit and score on halves")
    args = parser.parse_args()
    started = time.perf_counter()
    gva, pages = gva_stream(), dev_pages_stream()
    print(f"fitting on {len(gva)} GVA articles and {len(pages)} news pages")
    model = fit([gva, pages], gva)
    print(f"chosen threshold {model.threshold:.2f}")
    if args.write:
        MODEL_PATH.write_text(as_yaml(model), encoding="utf-8")
        print(f"wrote {MODEL_PATH}")
    else:
        print(as_yaml(model))
    if args.check:
        check_halves(gva)
    print(f"elapsed {time.perf_counter() - started:.1f}s")


if __name__ == "__main__":
    main()
