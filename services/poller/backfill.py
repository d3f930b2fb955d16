"""Backfill a new feed: its whole history (RFC 5005 archives or pages) into ``feeds.entries``.

Input: a feed URL, fetched with the shared guarded HTTP client, each history document once
(``paging.py``). Output: ``feed_entry.v1`` messages on ``feeds.entries`` (entries without a
usable link to ``feeds.entries.dlq``), oldest first, built by the poller's own code
(``parse_feed``, ``feed_entry``), and the feed's seen entries in the poller's state topic so
that the poller, once the feed is added to its list, does not emit them again.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.http import FetchError, FetchSettings, HostPoliteness, fetch, make_session
from services.common.kafka import (
    FIRST_SEEN_HEADER,
    DeadLetterSender,
    Failure,
    ValidatingProducer,
    make_producer,
)
from services.common.ranges import ReplayError
from services.common.settings import KafkaSettings, TopicNames
from services.common.topics import ensure_topics, pipeline_topics
from services.poller.feeds import ParsedEntry, feed_entry, parse_feed
from services.poller.paging import HistoryWalk, paging_links
from services.poller.settings import PollerSettings
from services.poller.state import FeedState, StateStore, state_topic_spec

logger = logging.getLogger(__name__)

SERVICE = "replay-backfill"


class PollerStateSettings(BaseSettings):
    """The poller settings a backfill must agree with, read from the poller's own variables."""

    model_config = SettingsConfigDict(env_prefix="WIREWATCH_POLLER_", frozen=True, extra="ignore")

    state_topic: str = PollerSettings.model_fields["state_topic"].default
    seen_entries_per_feed: int = PollerSettings.model_fields["seen_entries_per_feed"].default


@dataclass
class FeedHistory:
    """The entries of every document read, newest document first, each entry once."""

    url: str
    title: str | None = None
    pages: list[tuple[str, int]] = field(default_factory=list)
    entries: list[ParsedEntry] = field(default_factory=list)
    current_ids: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    truncated: bool = False

    def add_page(self, url: str, entries: tuple[ParsedEntry, ...]) -> None:
        known = {entry.entry_id for entry in self.entries}
        fresh = [entry for entry in entries if entry.entry_id not in known]
        if not self.pages:
            self.current_ids = [entry.entry_id for entry in entries]
        self.pages.append((url, len(fresh)))
        self.entries.extend(fresh)


def oldest_first(entries: list[ParsedEntry]) -> list[ParsedEntry]:
    """By publication (else update) time; undated entries first, in reverse feed order.

    Feeds list newest first, but not always in date order; downstream time windows (story
    grouping) work best when history arrives in the order it happened.
    """
    undated = datetime.min.replace(tzinfo=UTC)
    return sorted(reversed(entries), key=lambda e: e.published or e.updated or undated)


async def read_history(url: str, fetch_settings: FetchSettings, *, max_pages: int) -> FeedHistory:
    """Fetch the feed and every archive or page it links to; a page that fails is reported.

    Only the first document failing is an error: without it there is no feed.
    """
    history = FeedHistory(url)
    walk = HistoryWalk(url, max_pages=max_pages)
    politeness = HostPoliteness.from_settings(fetch_settings)
    async with make_session(fetch_settings) as session:
        while (page_url := walk.next_url()) is not None:
            try:
                result = await fetch(
                    session, page_url, settings=fetch_settings, politeness=politeness
                )
            except FetchError as exc:
                history.failures.append((page_url, str(exc)))
                continue
            if result.status != 200:
                history.failures.append((page_url, f"HTTP {result.status}"))
                continue
            parsed = parse_feed(result.body, url=result.url, headers=dict(result.headers))
            if parsed.looks_broken:
                history.failures.append(
                    (page_url, f"not a feed: {parsed.bozo_message or parsed.problem}")
                )
                continue
            if not history.pages:
                history.title = parsed.title
            history.add_page(page_url, parsed.entries)
            walk.add(paging_links(result.body, url=result.url))
    history.truncated = walk.truncated
    if not history.pages:
        reason = history.failures[0][1] if history.failures else "nothing fetched"
        raise ReplayError(f"cannot read feed {url}: {reason}")
    return history


@dataclass(frozen=True)
class BackfillOutcome:
    history: FeedHistory
    emitted: int
    already_seen: int
    dead_lettered: int
    state_written: bool


async def backfill_feed(
    kafka: KafkaSettings,
    topics: TopicNames,
    fetch_settings: FetchSettings,
    url: str,
    *,
    state_topic: str,
    seen_bound: int,
    max_pages: int,
    dry_run: bool,
) -> BackfillOutcome:
    """Read the feed's history and send the entries the poller has not emitted, oldest first."""
    history = await read_history(url, fetch_settings, max_pages=max_pages)
    wanted = {topics.entries, TopicNames.dlq(topics.entries)}
    specs = [spec for spec in pipeline_topics(topics) if spec.name in wanted]
    await ensure_topics(kafka, [*specs, state_topic_spec(state_topic)])
    producer = make_producer(kafka)
    await producer.start()
    try:
        store = StateStore(kafka, state_topic, producer)
        state = (await store.load()).get(url)
        fresh = [e for e in history.entries if state is None or not state.has_seen(e.entry_id)]
        seen_before = len(history.entries) - len(fresh)
        if dry_run:
            return BackfillOutcome(history, 0, seen_before, 0, state_written=False)
        emitted, dead = await _send_entries(producer, topics, history, fresh)
        written = False
        if state is None:
            # The entries of the live document come first: they must never look new.
            state = FeedState(feed_key=url, url=url)
            ids = history.current_ids + [e.entry_id for e in history.entries]
            state.remember(list(dict.fromkeys(ids)), bound=seen_bound)
            await (await store.save(state))
            written = True
        return BackfillOutcome(history, emitted, seen_before, dead, state_written=written)
    finally:
        await producer.stop()


async def _send_entries(
    producer: Any, topics: TopicNames, history: FeedHistory, entries: list[ParsedEntry]
) -> tuple[int, int]:
    """Send in ``oldest_first`` order and wait for every acknowledgement."""
    now = datetime.now(UTC)
    first_seen = now.replace(microsecond=now.microsecond // 1000 * 1000)
    header = [(FIRST_SEEN_HEADER, f"{first_seen.timestamp():.3f}".encode())]
    sender = ValidatingProducer(producer, service=SERVICE)
    dead_letters = DeadLetterSender(sender, service=SERVICE)
    futures = []
    emitted = dead = 0
    for entry in oldest_first(entries):
        if entry.url is None:
            letter = Failure(
                "entry_without_link",
                "feed entry has no usable http(s) link, so there is no article to fetch",
                details={"feed_url": history.url, "entry_id": entry.entry_id},
            )
            original = json.dumps(
                {"entry_id": entry.entry_id, "link": entry.link, "title": entry.title},
                ensure_ascii=False,
            ).encode()
            futures.append(
                await dead_letters.send(
                    topics.entries, letter, original=original, key=entry.entry_id.encode()
                )
            )
            dead += 1
            continue
        message = feed_entry(
            entry, feed_url=history.url, feed_title=history.title, first_seen=first_seen
        )
        futures.append(
            await sender.send(topics.entries, message, key=entry.url, headers=list(header))
        )
        emitted += 1
    for future in futures:
        await future
    return emitted, dead
