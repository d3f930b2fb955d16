"""The story-level evaluation data as streams, the clustering scores, and the simple baselines.

Shared by ``bench/dedup_quality.py`` (the figures) and ``bench/fit_story_model.py`` (the fit).
Streams are in publication order (ties by id), as a news stream arrives.
"""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from bench.evaldata import REPO_ROOT, eval_dir
from services.dedup.engine import ArticleIn, Deduplicator, parse_time
from services.dedup.offline import load_seed_articles
from services.dedup.similarity import content_words

DAY = 86400.0
# The day the demo feed dates the seed articles (wirewatch_tools/demo/seeds/ORIGIN.md).
SEEDS_PUBLISHED = "2025-03-17T12:00:00Z"


@dataclass(frozen=True)
class Labelled:
    article: ArticleIn
    story: str  # the gold story


def gva_stream() -> list[Labelled]:
    """``stories/gva_dev.jsonl``: US shootings 2013-2015, one story an incident (evaluation
    only; never copied into the repository)."""
    path = eval_dir() / "stories" / "gva_dev.jsonl"
    rows = [json.loads(line) for line in path.open(encoding="utf-8")]
    rows.sort(key=lambda r: (r["published"], r["id"]))
    return [
        Labelled(
            ArticleIn(r["id"], r["title"] or "", r["text"], parse_time(r["published"])), r["story"]
        )
        for r in rows
    ]


def dev_pages_stream() -> list[Labelled]:
    """The 29 labelled news pages with their happening and time (``neardup/*_stories.jsonl``)."""
    neardup = eval_dir() / "neardup"
    labels = {
        row["id"]: row
        for row in map(
            json.loads, (neardup / "news_pages_dev_stories.jsonl").open(encoding="utf-8")
        )
    }
    pages = [json.loads(line) for line in (neardup / "news_pages_dev.jsonl").open(encoding="utf-8")]
    stream = [
        Labelled(
            ArticleIn(
                p["id"], p.get("title") or "", p["text"], parse_time(labels[p["id"]]["published"])
            ),
            labels[p["id"]]["story"],
        )
        for p in pages
    ]
    return sorted(
        stream, key=lambda item: (item.article.event_time or 0.0, item.article.article_id)
    )


def seed_stream() -> list[Labelled]:
    published = parse_time(SEEDS_PUBLISHED)
    return [
        Labelled(ArticleIn(a.article_id, a.title, a.text, published), "seeds")
        for a in load_seed_articles(REPO_ROOT / "wirewatch_tools" / "demo" / "seeds")
    ]


def cluster(stream: Iterable[Labelled], engine: Deduplicator | None = None) -> dict[str, str]:
    """Each article's story id from one engine fed the stream in order."""
    engine = engine or Deduplicator()
    return {item.article.article_id: engine.decide(item.article)[0].story_id for item in stream}


def gold(stream: Iterable[Labelled]) -> dict[str, str]:
    return {item.article.article_id: item.story for item in stream}


@dataclass(frozen=True)
class Scores:
    precision: float
    recall: float

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def __str__(self) -> str:
        return f"P={self.precision:.3f} R={self.recall:.3f} F1={self.f1:.3f}"


def _groups(assignment: dict[str, str]) -> dict[str, set[str]]:
    groups: dict[str, set[str]] = defaultdict(set)
    for item, cluster_id in assignment.items():
        groups[cluster_id].add(item)
    return groups


def bcubed(predicted: dict[str, str], truth: dict[str, str]) -> Scores:
    """B-cubed precision and recall (Bagga & Baldwin 1998), averaged over items."""
    mine, theirs = _groups(predicted), _groups(truth)
    precision = recall = 0.0
    for item in predicted:
        a, b = mine[predicted[item]], theirs[truth[item]]
        shared = len(a & b)
        precision += shared / len(a)
        recall += shared / len(b)
    return Scores(precision / len(predicted), recall / len(predicted))


def pairs_of(assignment: dict[str, str]) -> set[tuple[str, str]]:
    return {
        (a, b) if a < b else (b, a)
        for members in _groups(assignment).values()
        for a, b in itertools.combinations(members, 2)
    }


def pairwise(predicted: dict[str, str], truth: dict[str, str]) -> Scores:
    mine, theirs = pairs_of(predicted), pairs_of(truth)
    shared = len(mine & theirs)
    return Scores(shared / len(mine) if mine else 1.0, shared / len(theirs) if theirs else 1.0)


def each_alone(stream: Iterable[Labelled]) -> dict[str, str]:
    return {item.article.article_id: item.article.article_id for item in stream}


def tfidf_nearest(stream: list[Labelled], threshold: float, *, days: float = 3.0) -> dict[str, str]:
    """The afternoon baseline: each article joins the story of its most similar earlier article
    within ``days`` when their TF-IDF cosine (IDF of the articles seen so far) reaches
    ``threshold``; it compares with every earlier article in that time."""
    frequencies: Counter[str] = Counter()
    seen: list[tuple[str, float, dict[str, float]]] = []
    story: dict[str, str] = {}
    for count, item in enumerate(stream, start=1):
        article = item.article
        tf = Counter(content_words(f"{article.title}\n{article.text}"))
        frequencies.update(tf.keys())
        weights = {
            w: (1 + math.log(c)) * math.log((count + 1) / (frequencies[w] + 0.5))
            for w, c in tf.items()
        }
        norm = math.sqrt(sum(x * x for x in weights.values())) or 1.0
        vector = {w: x / norm for w, x in weights.items()}
        when = article.event_time or 0.0
        best, best_score = None, 0.0
        for other_id, other_time, other in seen:
            if abs(other_time - when) > days * DAY:
                continue
            score = sum(x * other.get(w, 0.0) for w, x in vector.items())
            if score > best_score:
                best, best_score = other_id, score
        chosen = story[best] if best is not None and best_score >= threshold else article.article_id
        story[article.article_id] = chosen
        seen.append((article.article_id, when, vector))
    return story


BASELINE_THRESHOLDS = (0.10, 0.125, 0.15, 0.175, 0.2, 0.25, 0.3)


def best_baseline(stream: list[Labelled]) -> tuple[float, dict[str, str]]:
    """The TF-IDF rule at the threshold (of ``BASELINE_THRESHOLDS``) with the best pairwise F1
    on ``stream`` itself: chosen on the data it is scored on, which favours the baseline."""
    truth = gold(stream)
    results = [(t, tfidf_nearest(stream, t)) for t in BASELINE_THRESHOLDS]
    return max(results, key=lambda item: pairwise(item[1], truth).f1)
