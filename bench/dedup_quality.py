"""Dedup quality on the labelled near-duplicate pages and the five seed articles.

Runs the offline form (articles in file order through one ``Deduplicator``) and scores pairs:
story level (same ``story_id``) on strong + weak duplicates, copy level (same copy root) on
strong duplicates, and the share of ``hard_negative_same_topic`` pairs merged. The baseline
beside it is plain word 5-shingle Jaccard >= 0.2 (what MinHash-LSH near-duplicate detection
approximates, at a permissive threshold; at 0.5 it finds no pair at all), on the same pairs.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from typing import Any

from bench.evaldata import REPO_ROOT, eval_dir
from services.dedup.engine import ArticleIn, Deduplicator, parse_time
from services.dedup.offline import load_seed_articles

NEARDUP = eval_dir() / "neardup"


def prf(
    predicted: set[tuple[str, str]], gold: set[tuple[str, str]], universe: set[tuple[str, str]]
) -> tuple[float, float, float]:
    tp = len(predicted & gold)
    fp = len((predicted - gold) & universe)
    fn = len(gold - predicted)
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)


BASELINE_JACCARD = 0.2


def shingle_baseline(rows: list[dict[str, Any]]) -> dict[str, str]:
    """Cluster by 5-shingle Jaccard >= BASELINE_JACCARD with any other article (union-find)."""
    sets = {}
    for row in rows:
        tokens = re.findall(r"\w+", row["text"].lower())
        sets[row["id"]] = {" ".join(tokens[i : i + 5]) for i in range(len(tokens) - 4)}
    parent = {row["id"]: row["id"] for row in rows}

    def find(x: str) -> str:
        while parent[x] != x:
            x = parent[x]
        return x

    for a, b in itertools.combinations([r["id"] for r in rows], 2):
        sa, sb = sets[a], sets[b]
        if sa and sb and len(sa & sb) / len(sa | sb) >= BASELINE_JACCARD:
            parent[find(b)] = find(a)
    return {k: find(k) for k in parent}


def evaluate(rows: list[dict[str, Any]], pairs: list[dict[str, Any]]) -> dict[str, Any]:
    engine = Deduplicator()
    story, copy_root = {}, {}
    for row in rows:
        decision, _ = engine.decide(ArticleIn(row["id"], row.get("title") or "", row["text"]))
        story[row["id"]] = decision.story_id
        copy_root[row["id"]] = decision.copy_of or row["id"]
    baseline = shingle_baseline(rows)
    universe = {pair(p["id1"], p["id2"]) for p in pairs}
    strong = {pair(p["id1"], p["id2"]) for p in pairs if p["kind"] == "duplicate_strong"}
    weak = {pair(p["id1"], p["id2"]) for p in pairs if p["kind"] == "duplicate_weak"}
    hard = {pair(p["id1"], p["id2"]) for p in pairs if p["kind"] == "hard_negative_same_topic"}
    same_story = {u for u in universe if story[u[0]] == story[u[1]]}
    same_copy = {u for u in universe if copy_root[u[0]] == copy_root[u[1]]}
    same_base = {u for u in universe if baseline[u[0]] == baseline[u[1]]}
    # Copy level: strong pairs are positives; weak pairs (rewrites, translations) are neither.
    copy_universe = universe - weak
    out: dict[str, Any] = {}
    out["story_p"], out["story_r"], out["story_f1"] = prf(same_story, strong | weak, universe)
    out["copy_p"], out["copy_r"], out["copy_f1"] = prf(same_copy, strong, copy_universe)
    out["hard_merged"] = len(same_story & hard) / len(hard)
    out["easy_merged"] = len(same_story & (universe - strong - weak - hard)) / max(
        1, len(universe - strong - weak - hard)
    )
    out["base_story_p"], out["base_story_r"], out["base_story_f1"] = prf(
        same_base, strong | weak, universe
    )
    out["base_copy_p"], out["base_copy_r"], out["base_copy_f1"] = prf(
        same_base, strong, copy_universe
    )
    out["base_hard_merged"] = len(same_base & hard) / len(hard)
    out["_story"] = story
    out["_copy"] = copy_root
    return out


def cluster_prf(predicted: dict[str, str], gold: dict[str, str]) -> tuple[float, float, float]:
    """Pairwise P/R/F1 of a clustering against gold clusters (all pairs of items)."""

    def pairs_of(assignment: dict[str, str]) -> set[tuple[str, str]]:
        groups: dict[str, list[str]] = {}
        for item, cluster in assignment.items():
            groups.setdefault(cluster, []).append(item)
        return {pair(a, b) for g in groups.values() for a, b in itertools.combinations(g, 2)}

    predicted_pairs, gold_pairs = pairs_of(predicted), pairs_of(gold)
    tp = len(predicted_pairs & gold_pairs)
    p = tp / len(predicted_pairs) if predicted_pairs else 1.0
    r = tp / len(gold_pairs) if gold_pairs else 1.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def scoop_rows() -> list[dict[str, Any]]:
    path = NEARDUP / "scoop_feeditems" / "scoop_items.jsonl"
    rows = [json.loads(line) for line in path.open(encoding="utf-8")]
    return sorted(rows, key=lambda r: (r["published_at"], r["id"]))


def scoop(window_hours: float) -> tuple[int, tuple[float, float, float]]:
    """Story clusters on janitrai/scoop's feed items (short snippets), in publication order."""
    rows = scoop_rows()
    engine = Deduplicator(window_seconds=window_hours * 3600)
    predicted = {}
    for row in rows:
        item = ArticleIn(row["id"], row["title"], row["text"], parse_time(row["published_at"]))
        predicted[row["id"]] = engine.decide(item)[0].story_id
    return len(rows), cluster_prf(predicted, {r["id"]: r["cluster"] for r in rows})


def ratio(value: float, baseline: float) -> str:
    return f"{value / baseline:.2f}x" if baseline else "n/a (baseline 0)"


def main() -> None:
    rows = [json.loads(line) for line in (NEARDUP / "news_pages_dev.jsonl").open()]
    pairs = [json.loads(line) for line in (NEARDUP / "news_pages_dev_pairs.jsonl").open()]
    seeds = load_seed_articles(REPO_ROOT / "services" / "demo" / "seeds")
    started = time.perf_counter()
    result = evaluate(rows, pairs)
    print(f"neardup dev ({len(rows)} articles, {len(pairs)} labelled pairs)")
    base = f"baseline 5-shingle Jaccard>={BASELINE_JACCARD}"
    print(
        f"  story-level pairwise (strong+weak): P={result['story_p']:.3f} R={result['story_r']:.3f}"
        f" F1={result['story_f1']:.3f} (target >= 0.90)   {base}: P={result['base_story_p']:.3f}"
        f" R={result['base_story_r']:.3f} F1={result['base_story_f1']:.3f}"
        f"   ratio {ratio(result['story_f1'], result['base_story_f1'])}"
    )
    print(
        f"  copy-level pairwise (strong):       P={result['copy_p']:.3f} R={result['copy_r']:.3f}"
        f" F1={result['copy_f1']:.3f} (target >= 0.95)   {base}: P={result['base_copy_p']:.3f}"
        f" R={result['base_copy_r']:.3f} F1={result['base_copy_f1']:.3f}"
        f"   ratio {ratio(result['copy_f1'], result['base_copy_f1'])}"
    )
    print(
        f"  hard_negative_same_topic merged: {result['hard_merged']:.1%} (target <= 2%)"
        f"   {base}: {result['base_hard_merged']:.1%}   easy negatives merged:"
        f" {result['easy_merged']:.1%}"
    )
    # Seeds alone, then seeds streamed together with the dev set (must not merge with it).
    engine = Deduplicator()
    seed_story = [engine.decide(a)[0].story_id for a in seeds]
    together = Deduplicator()
    for row in rows:
        together.decide(ArticleIn(row["id"], row.get("title") or "", row["text"]))
    mixed = [together.decide(a)[0] for a in seeds]
    seed_pairs = list(itertools.combinations(range(len(seeds)), 2))
    joined = sum(seed_story[i] == seed_story[j] for i, j in seed_pairs)
    joined_mixed = sum(mixed[i].story_id == mixed[j].story_id for i, j in seed_pairs)
    dev_ids = {row["id"] for row in rows}
    leaked = sum(d.story_id in dev_ids for d in mixed)
    print(
        f"seeds: {joined}/{len(seed_pairs)} pairs in one story alone; {joined_mixed}/"
        f"{len(seed_pairs)} after the dev set; {leaked} seed(s) merged into a dev story"
    )
    for hours in (72.0, 24.0 * 7):
        count, (p, r, f) = scoop(hours)
        print(
            f"scoop feed items ({count}, unseen while tuning), story pairwise with a {hours:.0f} h"
            f" window: P={p:.3f} R={r:.3f} F1={f:.3f}"
        )
    rows = scoop_rows()
    gold = {r["id"]: r["cluster"] for r in rows}
    p, r, f = cluster_prf(shingle_baseline(rows), gold)
    print(
        f"  baseline 5-shingle Jaccard>={BASELINE_JACCARD} on them: P={p:.3f} R={r:.3f} F1={f:.3f}"
    )
    print(f"  elapsed {time.perf_counter() - started:.2f}s")


if __name__ == "__main__":
    main()
