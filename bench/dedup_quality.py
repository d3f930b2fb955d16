"""Dedup quality: stories (every report of one happening) and copies, each beside a baseline.

- The GVA stream (``stories/gva_dev.jsonl``, 1,925 articles on US shootings in date order):
  B-cubed and pairwise P/R/F1 of the story ids, beside two baselines of the same run: each
  article alone, and the online TF-IDF nearest-article rule at the threshold that suits it best
  on this very data.
- The 29 labelled news pages in publication order: story pairwise P/R/F1 on the v2 pairs
  (``same_copy`` and ``same_happening`` positive), the share of ``other_happening_same_topic``
  pairs merged, and copy-level P/R/F1 on the strong pairs of the first labelling, beside plain
  word 5-shingle Jaccard >= 0.2 (what MinHash-LSH near-duplicate detection approximates).
- The five seed articles: one story alone; after the dev pages at their own date; and, as a
  stress test, re-dated to the day of the Jeddah talks (same actors, same day, another
  happening), where they must still stay apart from every dev story.
- janitrai/scoop's feed items, not used in fitting (see docs/dedup.md for the one look taken).
"""

from __future__ import annotations

import itertools
import json
import re
import time
from dataclasses import replace
from typing import Any

from bench.evaldata import eval_dir
from bench.storydata import (
    Labelled,
    Scores,
    bcubed,
    best_baseline,
    cluster,
    dev_pages_stream,
    each_alone,
    gold,
    gva_stream,
    pairwise,
    seed_stream,
    tfidf_nearest,
)
from services.dedup.engine import ArticleIn, Deduplicator, parse_time

NEARDUP = eval_dir() / "neardup"
BASELINE_JACCARD = 0.2
JEDDAH_DAY = "2025-03-11T12:00:00Z"
GVA_TARGETS = {"B-cubed": 0.98, "pairwise": 0.93}


def pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)


def shingle_baseline(stream: list[Labelled]) -> dict[str, str]:
    """Cluster by 5-shingle Jaccard >= BASELINE_JACCARD with any other article (union-find)."""
    sets = {}
    for item in stream:
        tokens = re.findall(r"\w+", item.article.text.lower())
        sets[item.article.article_id] = {
            " ".join(tokens[i : i + 5]) for i in range(len(tokens) - 4)
        }
    parent = {key: key for key in sets}

    def find(x: str) -> str:
        while parent[x] != x:
            x = parent[x]
        return x

    for a, b in itertools.combinations(sets, 2):
        sa, sb = sets[a], sets[b]
        if sa and sb and len(sa & sb) / len(sa | sb) >= BASELINE_JACCARD:
            parent[find(b)] = find(a)
    return {key: find(key) for key in parent}


def labelled_pairs(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (NEARDUP / name).open(encoding="utf-8")]


def pair_scores(
    same: set[tuple[str, str]], positive: set[tuple[str, str]], universe: set[tuple[str, str]]
) -> Scores:
    tp = len(same & positive)
    fp = len((same - positive) & universe)
    fn = len(positive - same)
    return Scores(tp / (tp + fp) if tp + fp else 1.0, tp / (tp + fn) if tp + fn else 1.0)


def target(value: float, goal: float, *, at_most: bool = False) -> str:
    met = value <= goal if at_most else value >= goal
    return f"(target {'<=' if at_most else '>='} {goal:g}: {'met' if met else 'NOT met'})"


def report_gva() -> None:
    stream = gva_stream()
    truth = gold(stream)
    started = time.perf_counter()
    predicted = cluster(stream)
    seconds = time.perf_counter() - started
    threshold, baseline = best_baseline(stream)
    rows = [
        ("wirewatch", predicted),
        ("baseline: each article alone", each_alone(stream)),
        (f"baseline: TF-IDF nearest article within 3 days, cosine >= {threshold:g}", baseline),
    ]
    print(
        f"GVA stream ({len(stream)} articles, {len(set(truth.values()))} stories, date order;"
        f" wirewatch {len(stream) / seconds:.0f} articles/s)"
    )
    for name, assignment in rows:
        b3, pw = bcubed(assignment, truth), pairwise(assignment, truth)
        print(f"  {name}\n    B-cubed  {b3}\n    pairwise {pw}")
    b3, pw = bcubed(predicted, truth), pairwise(predicted, truth)
    base_b3, base_pw = bcubed(baseline, truth), pairwise(baseline, truth)
    print(
        f"  wirewatch against the TF-IDF rule: B-cubed F1 {b3.f1:.3f} vs {base_b3.f1:.3f}"
        f" {target(b3.f1, GVA_TARGETS['B-cubed'])}; pairwise F1 {pw.f1:.3f} vs"
        f" {base_pw.f1:.3f} {target(pw.f1, GVA_TARGETS['pairwise'])}"
    )


def report_dev_pages() -> list[Labelled]:
    stream = dev_pages_stream()
    decisions = {}
    engine = Deduplicator()
    for item in stream:
        decisions[item.article.article_id] = engine.decide(item.article)[0]
    story = {k: d.story_id for k, d in decisions.items()}
    root = {k: d.copy_of or k for k, d in decisions.items()}
    baseline = shingle_baseline(stream)
    base = f"baseline 5-shingle Jaccard>={BASELINE_JACCARD}"

    v2 = labelled_pairs("news_pages_dev_pairs_v2.jsonl")
    universe = {pair(p["id1"], p["id2"]) for p in v2}
    positive = {
        pair(p["id1"], p["id2"]) for p in v2 if p["kind"] in ("same_copy", "same_happening")
    }
    other = {pair(p["id1"], p["id2"]) for p in v2 if p["kind"] == "other_happening_same_topic"}
    same_story = {u for u in universe if story[u[0]] == story[u[1]]}
    same_base = {u for u in universe if baseline[u[0]] == baseline[u[1]]}
    scores, base_scores = (
        pair_scores(same_story, positive, universe),
        pair_scores(same_base, positive, universe),
    )
    merged, base_merged = len(same_story & other) / len(other), len(same_base & other) / len(other)
    print(f"news pages ({len(stream)}, publication order; {len(v2)} pairs labelled by happening)")
    print(f"  story pairwise: {scores} {target(scores.f1, 0.95)}   {base}: {base_scores}")
    print(
        f"  other_happening_same_topic merged: {merged:.1%} of {len(other)}"
        f" {target(merged, 0.02, at_most=True)}   {base}: {base_merged:.1%}"
    )

    v1 = labelled_pairs("news_pages_dev_pairs.jsonl")
    weak = {pair(p["id1"], p["id2"]) for p in v1 if p["kind"] == "duplicate_weak"}
    strong = {pair(p["id1"], p["id2"]) for p in v1 if p["kind"] == "duplicate_strong"}
    copy_universe = {pair(p["id1"], p["id2"]) for p in v1} - weak
    same_copy = {u for u in copy_universe if root[u[0]] == root[u[1]]}
    base_copy = {u for u in copy_universe if baseline[u[0]] == baseline[u[1]]}
    copy, base_copy_scores = (
        pair_scores(same_copy, strong, copy_universe),
        pair_scores(base_copy, strong, copy_universe),
    )
    print(
        f"  copy pairwise (strong pairs of the first labelling): {copy} {target(copy.f1, 0.95)}"
        f"   {base}: {base_copy_scores}"
    )
    independent = [a for a in ("np028",) if a in root]
    for article_id in independent:
        copied = sorted(k for k, r in root.items() if r == root[article_id] and k != article_id)
        print(
            f"  {article_id} (a hard copy-like independent report) shares its copy root with: "
            f"{', '.join(copied) or 'nothing'}"
        )
    return stream


def report_seeds(dev: list[Labelled]) -> None:
    seeds = seed_stream()
    seed_ids = [s.article.article_id for s in seeds]
    dev_ids = {item.article.article_id for item in dev}

    def seed_result(stream: list[Labelled]) -> str:
        story = cluster(stream)
        stories = {story[s] for s in seed_ids}
        merged = {k for k in dev_ids if story.get(k) in stories}
        verdict = "one story" if len(stories) == 1 else f"{len(stories)} stories"
        return f"{verdict}, {len(merged)} dev page(s) in it"

    print(f"seeds ({len(seeds)}, one happening by five outlets; target: one story, no dev page)")
    print(f"  alone: {seed_result(seeds)}")
    print(f"  after the dev pages, at their own date: {seed_result(dev + seeds)}")
    redated = [
        Labelled(replace(s.article, event_time=parse_time(JEDDAH_DAY)), s.story) for s in seeds
    ]
    merged = sorted(
        dev + redated, key=lambda i: (i.article.event_time or 0.0, i.article.article_id)
    )
    print(f"  re-dated into the day of the Jeddah talks: {seed_result(merged)}")
    alone = cluster(seeds)
    tfidf = tfidf_nearest(seeds, 0.15)
    print(
        f"  baseline TF-IDF nearest (0.15) on the seeds alone: {len(set(tfidf.values()))}"
        f" stories (wirewatch: {len(set(alone.values()))})"
    )


def report_scoop() -> None:
    path = NEARDUP / "scoop_feeditems" / "scoop_items.jsonl"
    rows = sorted(
        (json.loads(line) for line in path.open(encoding="utf-8")),
        key=lambda r: (r["published_at"], r["id"]),
    )
    stream = [
        Labelled(
            ArticleIn(r["id"], r["title"], r["text"], parse_time(r["published_at"])), r["cluster"]
        )
        for r in rows
    ]
    truth = gold(stream)
    predicted = cluster(stream)
    baseline = tfidf_nearest(stream, 0.15)
    print(f"scoop feed items ({len(stream)}, not used in fitting), story clusters:")
    print(
        f"  wirewatch: pairwise {pairwise(predicted, truth)}   B-cubed {bcubed(predicted, truth)}"
    )
    print(
        f"  baseline TF-IDF nearest (0.15): pairwise {pairwise(baseline, truth)}"
        f"   B-cubed {bcubed(baseline, truth)}"
    )


def main() -> None:
    started = time.perf_counter()
    report_gva()
    dev = report_dev_pages()
    report_seeds(dev)
    report_scoop()
    print(f"elapsed {time.perf_counter() - started:.1f}s")


if __name__ == "__main__":
    main()
