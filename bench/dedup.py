"""Dedup cost per article with 10k and with 100k articles in the window.

The window is filled with articles made by perturbing real texts (the neardup dev pages, the
seeds and the 181 article bodies of the extraction benchmark): sentences drawn from three texts,
a fifth of the words swapped for others of the corpus, names and figures altered. Then fresh
articles of the same kind go through ``Deduplicator.decide`` (fingerprint and profile, copy
lookup and comparison, story lookup and scoring, insert) and the rate is measured at both window
sizes. The baseline, in the same run, is the copy comparison against every article of the window
(a scan instead of the index).
"""

from __future__ import annotations

import json
import multiprocessing
import random
import re
import resource
import time

from bench.evaldata import REPO_ROOT, eval_dir
from services.dedup.engine import ArticleIn, Deduplicator
from services.dedup.index import WindowEntry
from services.dedup.profile import Profile, make_profile
from services.dedup.similarity import Fingerprint, fingerprint

SMALL, LARGE = 10_000, 100_000
MEASURED = 200
ROUNDS = 5  # best of: the machine is shared, and the least disturbed round is the truest
SCANNED = 3
START = 1_741_600_000.0


def corpus() -> list[str]:
    texts = []
    neardup = eval_dir() / "neardup" / "news_pages_dev.jsonl"
    texts += [json.loads(line)["text"] for line in neardup.open(encoding="utf-8")]
    truth = json.loads((eval_dir() / "extraction" / "ground-truth.json").read_text())
    texts += [item["articleBody"] for item in truth.values() if len(item["articleBody"]) > 400]
    seeds = REPO_ROOT / "wirewatch_tools" / "demo" / "seeds"
    texts += [path.read_text(encoding="utf-8") for path in sorted(seeds.glob("*.txt"))]
    return texts


SENTENCES: list[str] = []
VOCABULARY: list[str] = []


def _init() -> None:
    texts = corpus()
    for text in texts:
        SENTENCES.extend(s for s in re.split(r"(?<=[.!?])\s+", text) if len(s) > 40)
    VOCABULARY.extend(sorted({w for t in texts for w in re.findall(r"[A-Za-z]{4,}", t)}))


def synthetic_text(seed: int) -> str:
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not security
    picked = [rng.choice(SENTENCES) for _ in range(rng.randint(10, 18))]
    out = []
    for sentence in picked:
        tokens = sentence.split()
        for i in range(len(tokens)):
            roll = rng.random()
            if roll < 0.2:
                tokens[i] = rng.choice(VOCABULARY)
            elif tokens[i][:1].isupper() and roll < 0.5:
                tokens[i] = rng.choice(VOCABULARY).capitalize()
            elif tokens[i][:1].isdigit():
                tokens[i] = str(rng.randint(1, 5000))
        out.append(" ".join(tokens))
    return " ".join(out)


def _fingerprint(seed: int) -> tuple[int, Fingerprint, Profile]:
    text = synthetic_text(seed)
    return seed, fingerprint("", text), make_profile("", text)


def fill(engine: Deduplicator, start: int, stop: int) -> None:
    """Add articles ``start..stop`` to the window (fingerprinted on two processes)."""
    with multiprocessing.Pool(2, initializer=_init) as pool:
        for seed, fp, profile in pool.imap(_fingerprint, range(start, stop), chunksize=200):
            engine.window.add(
                WindowEntry(
                    article_id=f"w{seed}",
                    event_time=START + seed % 150_000,
                    fingerprint=fp,
                    story_id=f"w{seed}",
                    copy_root=f"w{seed}",
                    profile=profile,
                )
            )


def measure(engine: Deduplicator, first_seed: int) -> float:
    """Articles per second through ``decide``: best of ROUNDS rounds of MEASURED articles."""
    rates = []
    for round_ in range(ROUNDS):
        base = first_seed + round_ * MEASURED
        articles = [
            ArticleIn(f"m{s}", "", synthetic_text(s), START + 100_000)
            for s in range(base, base + MEASURED)
        ]
        started = time.perf_counter()
        for article in articles:
            engine.decide(article)
        rates.append(MEASURED / (time.perf_counter() - started))
    return max(rates)


def measure_scan(engine: Deduplicator, first_seed: int) -> float:
    """Baseline: compare with every article in the window."""
    entries = list(engine.window.iter_entries())
    started = time.perf_counter()
    for seed in range(first_seed, first_seed + SCANNED):
        fp = fingerprint("", synthetic_text(seed))
        for entry in entries:
            engine.compare(fp, entry)
    return SCANNED / (time.perf_counter() - started)


def main() -> None:
    _init()
    engine = Deduplicator()
    t0 = time.perf_counter()
    fill(engine, 0, SMALL)
    print(f"window filled to {len(engine.window):,} in {time.perf_counter() - t0:.0f}s")
    small = measure(engine, 10_000_000)
    scan_small = measure_scan(engine, 20_000_000)
    t0 = time.perf_counter()
    fill(engine, SMALL, LARGE)
    print(f"window filled to {len(engine.window):,} in {time.perf_counter() - t0:.0f}s")
    large = measure(engine, 30_000_000)
    scan_large = measure_scan(engine, 40_000_000)
    print(f"indexed lookup: {small:8.1f} articles/s at {SMALL:,} in the window")
    print(f"indexed lookup: {large:8.1f} articles/s at {LARGE:,} in the window")
    print(
        f"  cost ratio 100k/10k: {small / large:.2f}x (target <= 1.5x); >= 100/s at 100k: "
        f"{'yes' if large >= 100 else 'NO'}"
    )
    print(
        f"baseline full scan: {scan_small:8.3f} articles/s at {SMALL:,}, "
        f"{scan_large:8.3f} at {LARGE:,} (ratio {scan_small / scan_large:.1f}x)"
    )
    print(f"  index speed-up at 100k: {large / scan_large:.0f}x")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"peak memory of the process with {len(engine.window):,} articles: {peak_mb:.0f} MB,"
        f" {peak_mb * 1024 / len(engine.window):.1f} KB an article (the process's whole peak"
        " divided by the window, an upper bound)"
    )


if __name__ == "__main__":
    main()
