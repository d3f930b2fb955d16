"""Never lose accepted data: a feed's state is saved only after the broker acknowledged its entries.

Fakes stand in for the producer and the fetch here (unit test); the same path runs against the
real broker and HTTP server in tests/integration/test_poller_service.py.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError
from multidict import CIMultiDict, CIMultiDictProxy
from prometheus_client import CollectorRegistry

from services.common.http import FetchResult, FetchSettings
from services.common.shutdown import GracefulStop
from services.poller import app
from services.poller.app import Poller, PollerMetrics
from services.poller.feedlist import FeedSpec
from services.poller.feeds import parse_feed
from services.poller.settings import PollerSettings
from services.poller.state import FeedState

GUARDIAN = "rss-parser/test/input/guardian.rss"


class FlakyProducer:
    """Accepts sends, but the broker's acknowledgement fails for the first ``failures`` sends."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.sent: list[tuple[str, bytes | None]] = []

    async def send(self, topic: str, value: bytes, **_: Any) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.failures > 0:
            self.failures -= 1
            future.set_exception(KafkaTimeoutError())
        else:
            self.sent.append((topic, value))
            future.set_result(None)
        return future


def one_feed_poller(feed: FeedSpec, producer: Any, registry: CollectorRegistry) -> Poller:
    """A poller of ``feed`` alone, with a fresh state, sending through ``producer``."""
    poller = Poller(
        [feed],
        settings=PollerSettings(feeds=Path("unused.yaml"), state_topic="state"),
        fetch_settings=FetchSettings(),
        producer=producer,
        metrics=PollerMetrics(registry),
    )
    poller.states[feed.url] = FeedState(feed_key=feed.url, url=feed.url)
    return poller


@pytest.fixture
def guardian_fetch(eval_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    body = (eval_dir / "feeds" / GUARDIAN).read_bytes()

    async def fake_fetch(_session: Any, url: str, **_: Any) -> FetchResult:
        headers = CIMultiDictProxy(CIMultiDict({"Content-Type": "application/rss+xml"}))
        return FetchResult(url=url, status=200, headers=headers, body=body)

    monkeypatch.setattr(app, "fetch", fake_fetch)


async def test_unacknowledged_entries_are_not_marked_seen_and_are_sent_again(
    guardian_fetch: None,
) -> None:
    producer = FlakyProducer(failures=1)
    feed = FeedSpec(url="https://www.theguardian.com/us/rss", name="guardian")
    poller = one_feed_poller(feed, producer, CollectorRegistry())

    failed = await poller.poll_feed(feed)
    assert failed.outcome == "kafka_error"
    assert poller.states[feed.url].seen == []
    assert not [topic for topic, _ in producer.sent if topic == "state"]

    retried = await poller.poll_feed(feed)
    assert (retried.outcome, retried.emitted) == ("200", 55)
    entries = [v for topic, v in producer.sent if topic == "feeds.entries"]
    states = [v for topic, v in producer.sent if topic == "state"]
    assert len(entries) == 54 + 55  # the first poll's other 54 were sent, then all 55 again
    assert len(states) == 1
    assert producer.sent[-1][0] == "state"  # the state goes last, after every entry's ack

    again = await poller.poll_feed(feed)
    assert again.emitted == 0


async def test_a_feed_that_trips_a_bug_every_poll_is_counted_as_failing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The failing-feed alert reads the consecutive-failures gauge: a bug must move it too."""
    registry = CollectorRegistry()
    feed = FeedSpec(url="https://example.org/feed.xml", name="buggy")
    poller = one_feed_poller(feed, FlakyProducer(failures=0), registry)
    stop = GracefulStop()
    polls = 0

    async def broken_poll(_feed: FeedSpec) -> Any:
        nonlocal polls
        polls += 1
        if polls == 3:
            stop.request()
        raise RuntimeError("a bug")

    monkeypatch.setattr(poller, "poll_feed", broken_poll)
    monkeypatch.setattr(app, "failure_backoff", lambda *_, **__: 0.0)
    await asyncio.wait_for(poller._feed_loop(feed, stop), timeout=10)

    def sample(name: str, labels: dict[str, str]) -> float | None:
        return registry.get_sample_value(f"wirewatch_poller_{name}", labels)

    assert sample("feed_consecutive_failures", {"feed": "buggy"}) == 3
    assert sample("feed_failing_since_timestamp_seconds", {"feed": "buggy"}) is not None
    assert sample("polls_total", {"outcome": "unexpected_error"}) == 3


async def test_how_long_a_feed_has_failed_is_kept_across_restarts_and_cleared_by_a_success(
    eval_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The failing-feed alert reads failing_since, which comes back from the saved state."""
    body = (eval_dir / "feeds" / GUARDIAN).read_bytes()
    statuses = [500, 500, 200]

    async def fake_fetch(_session: Any, url: str, **_: Any) -> FetchResult:
        headers = CIMultiDictProxy(CIMultiDict({"Content-Type": "application/rss+xml"}))
        return FetchResult(url=url, status=statuses.pop(0), headers=headers, body=body)

    monkeypatch.setattr(app, "fetch", fake_fetch)
    feed = FeedSpec(url="https://www.theguardian.com/us/rss", name="guardian")
    registry = CollectorRegistry()
    poller = one_feed_poller(feed, FlakyProducer(failures=0), registry)
    now = [1_000.0]
    poller.clock = lambda: now[0]

    def failing_since() -> float | None:
        return registry.get_sample_value(
            "wirewatch_poller_feed_failing_since_timestamp_seconds", {"feed": "guardian"}
        )

    assert (await poller.poll_feed(feed)).outcome == "http_5xx"
    now[0] = 2_000.0
    await poller.poll_feed(feed)
    assert failing_since() == 1_000.0  # the run began at the first failure

    # A restarted poller reads the state back and reports the same moment.
    saved = FeedState.from_json(poller.states[feed.url].to_json())
    assert (saved.failing_since, saved.consecutive_failures) == (1_000.0, 2)
    registry_after = CollectorRegistry()
    restarted = one_feed_poller(feed, FlakyProducer(failures=0), registry_after)

    async def load() -> dict[str, FeedState]:
        return {feed.url: saved}

    monkeypatch.setattr(restarted.store, "load", load)
    await restarted.start()
    try:
        assert (
            registry_after.get_sample_value(
                "wirewatch_poller_feed_failing_since_timestamp_seconds", {"feed": "guardian"}
            )
            == 1_000.0
        )
    finally:
        await restarted.close()

    assert (await poller.poll_feed(feed)).outcome == "200"
    assert failing_since() is None
    assert poller.states[feed.url].failing_since is None


async def test_parsing_a_feed_leaves_the_event_loop_free(
    guardian_fetch: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large feed takes feedparser a good part of a second; other work goes on meanwhile."""
    slow_parse_seconds = 0.5

    def slow_parse(*args: Any, **kwargs: Any) -> Any:
        time.sleep(slow_parse_seconds)  # stands for feedparser's pure-Python work
        return parse_feed(*args, **kwargs)

    monkeypatch.setattr(app, "parse_feed", slow_parse)
    feed = FeedSpec(url="https://www.theguardian.com/us/rss", name="guardian")
    poller = one_feed_poller(feed, FlakyProducer(failures=0), CollectorRegistry())
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    try:
        result = await poller.poll_feed(feed)
    finally:
        ticker.cancel()
        await poller.close()
    assert (result.outcome, result.emitted) == ("200", 55)
    assert ticks >= 20  # about 50 while the parse slept; none if it had run on the loop
