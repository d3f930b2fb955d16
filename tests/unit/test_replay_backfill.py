"""Backfill's pure parts: entries collected across history documents, and the order sent."""

from __future__ import annotations

from datetime import UTC, datetime

from services.poller.backfill import FeedHistory, oldest_first
from services.poller.feeds import ParsedEntry


def entry(entry_id: str, day: int | None) -> ParsedEntry:
    published = datetime(2025, 3, day, tzinfo=UTC) if day else None
    return ParsedEntry(
        entry_id=entry_id,
        url=f"https://example.org/{entry_id}",
        link=f"https://example.org/{entry_id}",
        guid=entry_id,
        title=entry_id,
        summary=None,
        author=None,
        published=published,
        updated=None,
    )


def test_an_entry_repeated_on_an_older_page_is_kept_once() -> None:
    history = FeedHistory("https://example.org/feed")
    history.add_page("https://example.org/feed", (entry("c", 3), entry("b", 2)))
    history.add_page("https://example.org/archive-1", (entry("b", 2), entry("a", 1)))
    assert [e.entry_id for e in history.entries] == ["c", "b", "a"]
    assert history.pages == [("https://example.org/feed", 2), ("https://example.org/archive-1", 1)]
    assert history.current_ids == ["c", "b"]


def test_entries_go_out_by_date_with_undated_ones_first_in_reverse_feed_order() -> None:
    entries = [entry("d", 5), entry("x", None), entry("b", 9), entry("y", None), entry("a", 1)]
    assert [e.entry_id for e in oldest_first(entries)] == ["y", "x", "a", "d", "b"]
