"""Every evaluation input through the pure cores: no crash, and every rejection has a reason.

The 2,231 feed files of ``shared/eval/feeds/`` go through the poller's own parsing and entry
building (what a poll does with a body); the 181 pages of ``shared/eval/extraction/`` through
the extractor's core (what a fetched page becomes). ``manifest.jsonl`` holds feedparser
6.0.14's parse of each file, the version wirewatch pins, so entry counts and malformed flags
must match it exactly, except where the poller deliberately does better (a raw gzip body).
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from services.common import schemas
from services.common.kafka import Failure
from services.extractor.extract import ExtractedPage, build_article, extract_page
from services.poller.feeds import feed_entry, parse_feed

FIRST_SEEN = datetime(2026, 11, 28, tzinfo=UTC)
EXTRACTOR_REASONS = {"empty_extraction", "extraction_failed"}


def manifest(eval_dir: Path) -> list[dict[str, Any]]:
    lines = (eval_dir / "feeds" / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line]


def test_every_feed_file_parses_to_entries_or_a_reason_and_matches_the_manifest(
    eval_dir: Path,
) -> None:
    feeds_dir = eval_dir / "feeds"
    records = manifest(eval_dir)
    assert len(records) == 2231
    outcomes: Counter[str] = Counter()
    without_link = 0
    for record in records:
        path = record["path"]
        url = f"https://feeds.example.org/{path}"
        parsed = parse_feed((feeds_dir / path).read_bytes(), url=url)
        if parsed.gunzipped:
            # feedparser alone sees binary noise; the poller unpacks and recovers entries.
            assert record["bozo"] and record["n_entries"] == 0, path
            assert parsed.entries, path
        else:
            assert len(parsed.entries) == record["n_entries"], path
            assert (parsed.bozo_exception is not None) == bool(record["bozo"]), path
        if parsed.entries:
            outcomes["entries"] += 1
        elif parsed.problem is not None:
            outcomes[f"no entries: {parsed.problem}"] += 1
        else:
            # Nothing to emit and nothing wrong: a well-formed feed that lists no items.
            assert parsed.version and not parsed.looks_broken, path
            outcomes["valid feed without entries"] += 1
        for entry in parsed.entries:
            if entry.url is None:
                without_link += 1  # the poller sends these to the DLQ: entry_without_link
                continue
            message = feed_entry(
                entry, feed_url=url, feed_title=parsed.title, first_seen=FIRST_SEEN
            ).to_message()
            schemas.validate(schemas.FEED_ENTRY, message)
    assert sum(outcomes.values()) == len(records)
    # Real documents that are no feed at all are told apart from feeds that are empty.
    assert outcomes["no entries: not_a_feed"] > 0
    assert outcomes["entries"] > 1000
    assert without_link > 0
    print(dict(outcomes), f"{without_link} entries without a usable link")  # noqa: T201


def test_not_a_feed_document_is_rejected_with_a_reason(eval_dir: Path) -> None:
    body = (eval_dir / "feeds" / "feed-rs/feed-rs/fixture/xml/xml_sample_1.xml").read_bytes()
    parsed = parse_feed(body, url="https://example.org/feed")
    assert parsed.bozo_exception is None
    assert parsed.looks_broken
    assert parsed.problem == "not_a_feed"


def test_empty_but_valid_feed_is_not_a_rejection() -> None:
    body = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>quiet</title>
    </channel></rss>"""
    parsed = parse_feed(body, url="https://example.org/feed")
    assert not parsed.looks_broken
    assert parsed.problem is None


@pytest.mark.timeout(600)
def test_every_extraction_page_becomes_a_valid_article_or_a_dead_letter_with_a_reason(
    eval_dir: Path,
) -> None:
    pages = sorted((eval_dir / "extraction" / "html").glob("*.html.gz"))
    assert len(pages) == 181
    outcomes: Counter[str] = Counter()
    for path in pages:
        url = f"https://news.example.org/{path.name.removesuffix('.html.gz')}"
        result = extract_page(gzip.decompress(path.read_bytes()), url=url)
        if isinstance(result, Failure):
            assert result.reason in EXTRACTOR_REASONS and result.error, path.name
            outcomes[result.reason] += 1
            continue
        assert isinstance(result, ExtractedPage)
        article = build_article(result, fetched_url=url)
        schemas.validate(schemas.ARTICLE, article.to_message())
        assert article.text.strip(), path.name
        outcomes["article"] += 1
    assert sum(outcomes.values()) == 181
    # The benchmark pages are all real articles, each with a hand-made body: all extract.
    assert outcomes["article"] == 181, outcomes
    print(dict(outcomes))  # noqa: T201
