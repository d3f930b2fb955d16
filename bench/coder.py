"""Coder throughput on one core: articles per second over the seeds and the extraction set's texts.

Baseline, measured in the same run: the same pipeline parsing every sentence of every article
(spaCy over the whole text), which is what coding without the candidate-sentence filter costs.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import date
from pathlib import Path

from bench.evaldata import eval_dir
from services.coder.coding import default_coder
from services.coder.core import article_from_mapping, article_mentions

SEEDS = Path(__file__).resolve().parents[1] / "wirewatch_tools" / "demo" / "seeds"


def corpus() -> list[dict[str, str]]:
    articles = [
        {"id": path.stem, "text": path.read_text(encoding="utf-8"), "published": "2025-03-17"}
        for path in sorted(SEEDS.glob("0*.txt"))
    ]
    truth = json.loads((eval_dir() / "extraction" / "ground-truth.json").read_text())
    for key, value in sorted(truth.items()):
        body = value.get("articleBody") or ""
        if body.strip():
            articles.append({"id": key, "text": body, "published": "2025-03-17"})
    return articles


def main() -> int:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    coder = default_coder()
    articles = [article_from_mapping(a) for a in corpus()]
    chars = sum(len(a.text) for a in articles)
    print(f"{len(articles)} articles (5 seeds + extraction set bodies), {chars / 1e6:.2f} M chars")
    article_mentions(coder, articles[0])  # warm caches

    started = time.perf_counter()
    mentions = sum(len(article_mentions(coder, a)) for a in articles)
    ours = time.perf_counter() - started

    started = time.perf_counter()
    for article in articles:
        for paragraph in article.text.splitlines():
            if paragraph.strip():
                coder.nlp(paragraph)
    baseline = time.perf_counter() - started

    ours_rate = len(articles) / ours
    base_rate = len(articles) / baseline
    print(
        f"wirewatch coder (candidate sentences only): {ours_rate:.1f} articles/s "
        f"({1000 * ours / len(articles):.1f} ms/article, {mentions} mentions)"
    )
    print(
        f"baseline (full spaCy parse of every paragraph): {base_rate:.1f} articles/s "
        f"({1000 * baseline / len(articles):.1f} ms/article)"
    )
    print(f"speed-up {ours_rate / base_rate:.2f}x on one core ({date.today().isoformat()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
