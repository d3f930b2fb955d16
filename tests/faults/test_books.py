"""The fault suite's bookkeeping finds what it must find (no broker: records are set by hand)."""

from __future__ import annotations

import json

from services.common.settings import KafkaSettings, TopicNames
from tests.faults.harness import Books, CaseNames, Collector, EventView, account


def books_for(
    records: dict[str, list[tuple[str, object]]],
    feed_items: set[str],
    clean: EventView | None = None,
) -> Books:
    names = CaseNames.fresh("books")
    collector = Collector(KafkaSettings(), names.collected_topics)
    collector.records = {topic: [] for topic in names.collected_topics}
    topics = {
        "entries": names.topics.entries,
        "articles": names.topics.articles,
        "failed": names.topics.failed_articles,
        "entries.dlq": TopicNames.dlq(names.topics.entries),
        "articles.dlq": TopicNames.dlq(names.topics.articles),
        "deduplicated": names.topics.deduplicated,
        "events": names.topics.events,
    }
    for short, rows in records.items():
        collector.records[topics[short]] = [
            (key.encode(), None if value is None else json.dumps(value).encode())
            for key, value in rows
        ]
    return account(names, collector, feed_items, clean)


def test_an_entry_without_article_or_dead_letter_is_lost_and_a_dead_letter_counts() -> None:
    books = books_for(
        {
            "entries": [("u1", {}), ("u2", {}), ("u3", {})],
            "articles": [("u1", {"article_id": "a1"})],
            "failed": [("u2", {"reason": "timeout"})],
            "deduplicated": [("a1", {"article_id": "a1"})],
        },
        feed_items={"u1", "u2", "u3", "u4"},
    )
    assert books.lost_entries == ["u3", "u4"]  # u4 never even reached the entries topic
    assert (books.accepted, books.emitted, books.dlq) == (3, 1, 1)
    assert books.dead_letter_reasons == {"u2": "timeout"}


def test_an_article_that_dedup_never_answered_is_lost() -> None:
    books = books_for(
        {
            "entries": [("u1", {}), ("u2", {})],
            "articles": [("u1", {"article_id": "a1"}), ("u2", {"article_id": "a2"})],
            "deduplicated": [("a1", {"article_id": "a1"})],
        },
        feed_items={"u1", "u2"},
    )
    assert books.lost_articles == ["a2"] and books.lost == 1


def test_the_event_view_takes_the_latest_value_and_tombstones_and_compares_articles() -> None:
    clean = {"e1": ("a1", "a2"), "e2": ("a3",)}
    books = books_for(
        {
            "events": [
                ("e0", {"article_ids": ["a1"]}),
                ("e0", None),  # moved to e1: tombstone
                ("e1", {"article_ids": ["a1"]}),
                ("e1", {"article_ids": ["a2", "a1"]}),
                ("e2", {"article_ids": ["a1"]}),  # a3 lost, a1 counted a second time
            ]
        },
        feed_items=set(),
        clean=clean,
    )
    assert books.lost_events == ["e2/a3"]
    assert books.duplicated_events == ["e2/a1"]
