"""Extraction quality on the 181 pages of scrapinghub's article-extraction-benchmark.

Prints token 4-shingle precision, recall and F1 (the metric of ``shared/eval/README.md``) for
the core of ``wirewatch extract`` and, computed in the same run on the same pages, for bare
``trafilatura.extract(html, include_comments=False)``.
"""

from __future__ import annotations

import gzip
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

import trafilatura

from bench.evaldata import eval_dir
from services.extractor.extract import ExtractedPage, extract_page

TARGET_F1 = 0.960
_TOKEN = re.compile(r"\w+")


def shingles(text: str, size: int = 4) -> Counter[tuple[str, ...]]:
    tokens = _TOKEN.findall(text)
    return Counter(tuple(tokens[i : i + size]) for i in range(max(len(tokens) - size + 1, 0)))


def score(pairs: Iterable[tuple[str, str]]) -> tuple[float, float, float]:
    """Averaged precision and recall over documents, then F1 (scrapinghub's evaluate.py)."""
    precisions, recalls = [], []
    for expected, predicted in pairs:
        gold, guess = shingles(expected), shingles(predicted)
        tp = sum((gold & guess).values())
        fp = sum(guess.values()) - tp
        fn = sum(gold.values()) - tp
        total = tp + fp + fn
        if total == 0:
            continue
        tp_, fp_, fn_ = tp / total, fp / total, fn / total
        if tp_ + fp_ > 0:
            precisions.append(tp_ / (tp_ + fp_))
        if tp_ + fn_ > 0:
            recalls.append(tp_ / (tp_ + fn_))
    precision = sum(precisions) / len(precisions)
    recall = sum(recalls) / len(recalls)
    return precision, recall, 2 * precision * recall / (precision + recall)


def load_pages(root: Path) -> list[tuple[str, bytes, str]]:
    """``(id, html bytes, ground-truth body)`` for every page of the benchmark."""
    truth = json.loads((root / "ground-truth.json").read_text(encoding="utf-8"))
    pages = []
    for page_id in sorted(truth):
        body = gzip.decompress((root / "html" / f"{page_id}.html.gz").read_bytes())
        pages.append((page_id, body, truth[page_id]["articleBody"]))
    return pages


def wirewatch_text(body: bytes) -> str:
    page = extract_page(body)
    return page.text if isinstance(page, ExtractedPage) else ""


def bare_text(body: bytes) -> str:
    return trafilatura.extract(body, include_comments=False) or ""


def run(name: str, pages: list[tuple[str, bytes, str]], method: Callable[[bytes], str]) -> float:
    for _, body, _ in pages[:10]:  # warm-up (imports, caches) is not part of the timing
        method(body)
    started = time.perf_counter()
    outputs = [(truth, method(body)) for _, body, truth in pages]
    seconds = time.perf_counter() - started
    precision, recall, f1 = score(outputs)
    print(
        f"{name:<34} P={precision:.4f} R={recall:.4f} F1={f1:.4f} "
        f"({len(pages)} pages, {seconds:.1f}s)"
    )
    return f1


def main() -> int:
    root = eval_dir() / "extraction"
    pages = load_pages(root)
    print(f"extraction quality on {len(pages)} pages of {root} (token 4-shingle, per document)")
    ours = run("wirewatch extract (core)", pages, wirewatch_text)
    bare = run("bare trafilatura.extract (baseline)", pages, bare_text)
    print(f"F1 difference wirewatch - bare: {ours - bare:+.4f}; target F1 >= {TARGET_F1:.3f}")
    ok = ours >= TARGET_F1 and ours >= bare - 1e-9
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
