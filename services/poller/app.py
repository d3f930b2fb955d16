"""The poller service: feed list in, ``feeds.entries`` (and ``feeds.entries.dlq``) out.

Each feed is polled on its own schedule with conditional GET through the shared polite, guarded
HTTP client; new entries are sent keyed by canonical URL, and only once the broker has
acknowledged them is the feed's state (seen entries, validators, schedule) written to the
compacted state topic. A crash can therefore re-emit an entry but never lose one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from services.common.http import (
    FetchError,
    FetchResult,
    FetchSettings,
    HostPoliteness,
    fetch,
    make_session,
    retry_after_seconds,
)
from services.common.kafka import (
    FIRST_SEEN_HEADER,
    DeadLetterSender,
    Failure,
    ValidatingProducer,
    make_producer,
)
from services.common.metrics import HealthServer, ServiceMetrics
from services.common.redact import redact_url
from services.common.shutdown import GracefulStop
from services.common.topics import ensure_topics, pipeline_topics
from services.poller.feedlist import FeedSpec, load_feed_list
from services.poller.feeds import ParsedEntry, ParsedFeed, feed_entry, parse_feed
from services.poller.lease import LeaseLostError, PollerLease
from services.poller.schedule import (
    IntervalBounds,
    cache_max_age,
    failure_backoff,
    next_delay,
    publishing_interval,
)
from services.poller.settings import PollerSettings
from services.poller.state import FeedState, StateStore, state_topic_spec

logger = logging.getLogger(__name__)

SERVICE = "poller"
POLL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class PollerMetrics:
    """The poller's own metrics; ``feed`` labels are configured feed names, never URLs."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.service = ServiceMetrics(SERVICE, registry)
        self.polls = Counter(
            "wirewatch_poller_polls_total", "Feed polls by outcome", ["outcome"], registry=registry
        )
        self.entries_emitted = Counter(
            "wirewatch_poller_entries_emitted_total",
            "New feed entries sent to the entries topic",
            registry=registry,
        )
        self.bozo_feeds = Counter(
            "wirewatch_poller_bozo_feeds_total",
            "Polls whose feed body was malformed (feedparser bozo), by exception class",
            ["exception"],
            registry=registry,
        )
        self.poll_duration = Histogram(
            "wirewatch_poller_poll_duration_seconds",
            "One poll: fetch, parse and emit",
            buckets=POLL_BUCKETS,
            registry=registry,
        )
        self.failing_since = Gauge(
            "wirewatch_poller_feed_failing_since_timestamp_seconds",
            "Unix time of the first failed poll in the feed's current run of failures"
            " (absent while it works; kept across restarts)",
            ["feed"],
            registry=registry,
        )
        self.last_success = Gauge(
            "wirewatch_poller_feed_last_success_timestamp_seconds",
            "Unix time of the feed's last successful poll (200 or 304)",
            ["feed"],
            registry=registry,
        )
        self.interval = Gauge(
            "wirewatch_poller_feed_interval_seconds",
            "Seconds until the feed's next poll, as last scheduled",
            ["feed"],
            registry=registry,
        )
        self.lease_held = Gauge(
            "wirewatch_poller_lease_held",
            "1 while this poller holds the lease on the state topic (0: standing by)",
            registry=registry,
        )
        self.consecutive_failures = Gauge(
            "wirewatch_poller_feed_consecutive_failures",
            "Polls of the feed that failed in a row (410 Gone stays failed)",
            ["feed"],
            registry=registry,
        )

    def report_failures(self, feed: str, state: FeedState) -> None:
        self.consecutive_failures.labels(feed).set(state.consecutive_failures)
        if state.failing_since is not None:
            self.failing_since.labels(feed).set(state.failing_since)
        else:
            with contextlib.suppress(KeyError):  # not failing since the process started
                self.failing_since.remove(feed)


@dataclass(frozen=True)
class PollResult:
    feed: str
    outcome: str
    emitted: int
    dead_lettered: int
    delay: float | None


class Poller:
    """Polls the configured feeds; the loop (:meth:`run`) or one round (:meth:`poll_round`)."""

    def __init__(
        self,
        feeds: Sequence[FeedSpec],
        *,
        settings: PollerSettings,
        fetch_settings: FetchSettings,
        producer: AIOKafkaProducer,
        metrics: PollerMetrics,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
        lease: PollerLease | None = None,
    ) -> None:
        self.feeds = list(feeds)
        # None (tests that drive poll_round) polls without asking; the service always asks.
        self.lease = lease
        self.settings = settings
        self.fetch_settings = fetch_settings
        self.producer = producer
        self.sender = ValidatingProducer(producer, service=SERVICE)
        self.dead_letters = DeadLetterSender(self.sender, service=SERVICE)
        self.metrics = metrics
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self.clock = clock
        self.bounds = IntervalBounds(settings.min_interval_seconds, settings.max_interval_seconds)
        self.politeness = HostPoliteness.from_settings(fetch_settings)
        self.store = StateStore(settings.kafka, settings.state_topic, producer)
        self.states: dict[str, FeedState] = {}
        self.session: Any = None
        self.ready = False
        # What the state topic holds per feed (clock fields aside), to skip unchanged writes.
        self._saved: dict[str, bytes] = {}
        # feedparser is pure Python and takes about 0.4 s for a 1.6 MB feed: parsing on the
        # event loop would hold up every other feed's poll and the producer meanwhile.
        self.parser = ThreadPoolExecutor(max_workers=1, thread_name_prefix="feed-parser")

    async def start(self) -> None:
        """Open the HTTP session and read every feed's state back from the state topic."""
        self.session = make_session(self.fetch_settings)
        loaded = await self.store.load()
        self._saved = {key: state.durable_view() for key, state in loaded.items()}
        await self._recover_unreadable(loaded)
        for feed in self.feeds:
            self.states[feed.url] = loaded.get(feed.url) or FeedState(
                feed_key=feed.url, url=feed.url
            )
            if self.states[feed.url].gone:
                logger.warning(
                    "feed %s (%s) answered 410 Gone earlier; not polling it "
                    "(remove it from the list, or clear its state to retry)",
                    feed.name,
                    self.states[feed.url].url,
                )
            state = self.states[feed.url]
            if state.consecutive_failures and state.failing_since is None:
                state.failing_since = self.clock()  # saved before this field existed
            self.metrics.report_failures(feed.name, state)

    async def _recover_unreadable(self, loaded: dict[str, FeedState]) -> None:
        """Start the feeds whose state is unreadable afresh, knowing what they already sent.

        Such a feed has no validators, schedule or failure count any more, but the ids of its
        entries in the entries topic are marked seen, so that its next poll sends only entries
        that were never sent: without that, every entry still in the feed would go out again.
        """
        listed = {feed.url: feed for feed in self.feeds}
        poisoned = {key: why for key, why in self.store.unreadable.items() if key in listed}
        if not poisoned:
            return
        entries_topic = self.settings.topics.entries
        sent = await self.store.sent_entry_ids(entries_topic, set(poisoned))
        for key, why in sorted(poisoned.items()):
            state = FeedState(feed_key=key, url=key)
            state.remember(sorted(sent[key]), bound=self.settings.seen_entries_per_feed)
            loaded[key] = state
            logger.error(
                "feed %s: its state in %s is unreadable (%s); starting it as a new feed, with "
                "the %d entries %s already holds from it marked seen so that they are not "
                "sent again",
                listed[key].name,
                self.settings.state_topic,
                why,
                len(sent[key]),
                entries_topic,
                extra={"feed_url": key},
            )

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None
        self.parser.shutdown(wait=False, cancel_futures=True)

    async def poll_round(self) -> list[PollResult]:
        """Poll every feed that is not gone once, concurrently (politeness limits apply)."""
        active = [feed for feed in self.feeds if not self.states[feed.url].gone]
        return list(await asyncio.gather(*(self.poll_feed(feed) for feed in active)))

    async def run(self, stop: GracefulStop) -> None:
        """Poll each feed on its own schedule until ``stop``; a poll in progress completes."""
        tasks = [asyncio.create_task(self._feed_loop(feed, stop)) for feed in self.feeds]
        self.ready = True
        self.metrics.service.ready.set(1)
        try:
            await stop.event.wait()
            done, pending = await asyncio.wait(tasks, timeout=self.settings.stop_grace_seconds)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        finally:
            self.ready = False
            self.metrics.service.ready.set(0)
            for task in tasks:
                task.cancel()

    async def _feed_loop(self, feed: FeedSpec, stop: GracefulStop) -> None:
        state = self.states[feed.url]
        # Honour a schedule from before a restart (e.g. a Retry-After), but spread the first
        # polls a little so that a long list does not start with a burst.
        first = max(0.0, (state.next_poll_at or 0.0) - self.clock())
        first = first or self.rng.uniform(0.0, min(2.0, self.bounds.min_seconds))
        if await stop.wait(first):
            return
        while not stop.stopping and not state.gone:
            if self.lease is not None and not await self.lease.wait_until_held(stop):
                return
            try:
                result = await self.poll_feed(feed)
            except Exception:
                # A bug must not silently end this feed's polling: log it loudly, retry later.
                logger.exception("feed %s: unexpected error while polling", feed.name)
                state.record_failure(self.clock())
                backoff = failure_backoff(
                    state.consecutive_failures, bounds=self.bounds, rng=self.rng
                )
                result = PollResult(feed.name, "unexpected_error", 0, 0, backoff)
                # Counted like any failure, so a feed that trips a bug every poll still alerts.
                self._report(feed, state, result)
            if result.delay is None or await stop.wait(result.delay):
                return

    async def poll_feed(self, feed: FeedSpec) -> PollResult:
        """Fetch, parse and emit one feed; never raises for anything a feed or server does."""
        state = self.states[feed.url]
        started = time.perf_counter()
        try:
            result = await self._poll(feed, state)
        except KafkaError as exc:
            # Nothing is marked seen, so the entries are sent again at the next poll.
            logger.error("feed %s: could not hand entries to Kafka: %s", feed.name, exc)
            delay = failure_backoff(1, bounds=self.bounds, rng=self.rng)
            result = PollResult(feed.name, "kafka_error", 0, 0, delay)
        self.metrics.poll_duration.observe(time.perf_counter() - started)
        self._report(feed, state, result)
        return result

    def _report(self, feed: FeedSpec, state: FeedState, result: PollResult) -> None:
        self.metrics.polls.labels(result.outcome).inc()
        if result.delay is not None:
            self.metrics.interval.labels(feed.name).set(result.delay)
        self.metrics.report_failures(feed.name, state)

    async def _poll(self, feed: FeedSpec, state: FeedState) -> PollResult:
        headers = {
            "Accept": "application/rss+xml, application/atom+xml, application/xml;q=0.9, */*;q=0.8"
        }
        if state.etag:
            headers["If-None-Match"] = state.etag
        if state.last_modified:
            headers["If-Modified-Since"] = state.last_modified
        try:
            response = await fetch(
                self.session,
                state.url,
                settings=self.fetch_settings,
                politeness=self.politeness,
                headers=headers,
            )
        except FetchError as exc:
            logger.warning("feed %s (%s): %s: %s", feed.name, state.url, exc.reason, exc)
            return await self._failed(feed, state, exc.reason)

        self._follow_permanent_redirect(feed, state, response)
        status = response.status
        if status == 304:
            return await self._succeeded(feed, state, "304", response, emitted=0, dead=0)
        if status == 410:
            return await self._gone(feed, state)
        if status in (429, 503):
            wait = retry_after_seconds(response.headers.get("Retry-After"), now=self.clock())
            if wait is not None:
                self.politeness.defer(urlsplit(state.url).hostname or "", wait)
            return await self._failed(feed, state, str(status), retry_after=wait)
        if not 200 <= status < 300:
            outcome = f"http_{status // 100}xx"
            logger.warning("feed %s (%s): HTTP %d", feed.name, state.url, status)
            return await self._failed(feed, state, outcome)

        parsed = await asyncio.get_running_loop().run_in_executor(
            self.parser,
            functools.partial(
                parse_feed, response.body, url=response.url, headers=dict(response.headers)
            ),
        )
        if parsed.gunzipped:
            logger.warning(
                "feed %s (%s) sent gzip-compressed bytes without Content-Encoding; decompressed",
                feed.name,
                state.url,
                extra={"feed_url": state.url},
            )
        if parsed.bozo_exception is not None:
            self.metrics.bozo_feeds.labels(parsed.bozo_exception).inc()
            logger.warning(
                "feed %s (%s) is malformed: %s: %s (%d entries recovered)",
                feed.name,
                state.url,
                parsed.bozo_exception,
                parsed.bozo_message,
                len(parsed.entries),
                extra={"feed_url": state.url, "bozo_exception": parsed.bozo_exception},
            )
        if parsed.looks_broken:
            if parsed.bozo_exception is None:
                logger.warning(
                    "feed %s (%s) is not a feed: no RSS, Atom or CDF document and no entries",
                    feed.name,
                    state.url,
                    extra={"feed_url": state.url},
                )
            return await self._failed(feed, state, "200")
        emitted, dead = await self._emit_new(feed, state, parsed, response.url)
        state.etag = response.headers.get("ETag")
        state.last_modified = response.headers.get("Last-Modified")
        outcome = "200" if status == 200 else "http_2xx"
        return await self._succeeded(
            feed, state, outcome, response, emitted=emitted, dead=dead, parsed=parsed
        )

    def _follow_permanent_redirect(
        self, feed: FeedSpec, state: FeedState, response: FetchResult
    ) -> None:
        target = response.permanent_redirect_target
        if target and target != state.url:
            logger.info("feed %s moved permanently: %s -> %s", feed.name, state.url, target)
            state.url = target
            state.etag = state.last_modified = None

    async def _emit_new(
        self, feed: FeedSpec, state: FeedState, parsed: ParsedFeed, feed_url: str
    ) -> tuple[int, int]:
        """Send the unseen entries (oldest first) and wait for the broker to acknowledge all."""
        now = datetime.now(UTC)
        first_seen = now.replace(microsecond=now.microsecond // 1000 * 1000)
        first_seen_header = f"{first_seen.timestamp():.3f}".encode()
        futures = []
        emitted = dead = 0
        handled: set[str] = set()
        for entry in reversed(parsed.entries):
            if entry.entry_id in handled or state.has_seen(entry.entry_id):
                continue
            handled.add(entry.entry_id)
            if entry.url is None:
                futures.append(await self._dead_letter_entry(feed, entry, feed_url))
                dead += 1
                continue
            message = feed_entry(
                entry, feed_url=feed_url, feed_title=parsed.title, first_seen=first_seen
            )
            futures.append(
                await self.sender.send(
                    self.settings.topics.entries,
                    message,
                    key=entry.url,
                    headers=[(FIRST_SEEN_HEADER, first_seen_header)],
                )
            )
            emitted += 1
        await asyncio.gather(*futures)
        state.remember(
            (entry.entry_id for entry in parsed.entries), bound=self.settings.seen_entries_per_feed
        )
        if emitted:
            self.metrics.entries_emitted.inc(emitted)
            self.metrics.service.messages_out.labels(self.settings.topics.entries).inc(emitted)
            logger.info("feed %s: %d new entries", feed.name, emitted)
        return emitted, dead

    async def _dead_letter_entry(self, feed: FeedSpec, entry: ParsedEntry, feed_url: str) -> Any:
        topic = self.settings.topics.entries
        letter = Failure(
            "entry_without_link",
            "feed entry has no usable http(s) link, so there is no article to fetch",
            details={
                "feed": feed.name,
                "feed_url": redact_url(feed_url),
                "entry_id": entry.entry_id,
            },
        )
        original = json.dumps(
            {
                "entry_id": entry.entry_id,
                "link": entry.link,
                "title": entry.title,
                "guid": entry.guid,
                "summary": entry.summary,
            },
            ensure_ascii=False,
        ).encode("utf-8")
        self.metrics.service.dead_letters.labels(topic, letter.reason).inc()
        return await self.dead_letters.send(
            topic, letter, original=original, key=entry.entry_id.encode("utf-8")
        )

    async def _succeeded(
        self,
        feed: FeedSpec,
        state: FeedState,
        outcome: str,
        response: FetchResult,
        *,
        emitted: int,
        dead: int,
        parsed: ParsedFeed | None = None,
    ) -> PollResult:
        now = self.clock()
        state.record_success(now)
        state.last_outcome = outcome
        if parsed is not None:
            state.interval_seconds = publishing_interval(
                (entry.published or entry.updated for entry in parsed.entries),
                now=datetime.fromtimestamp(now, UTC),
                bounds=self.bounds,
            )
        interval = state.interval_seconds or self.bounds.min_seconds
        delay = next_delay(
            interval,
            bounds=self.bounds,
            max_age=cache_max_age(response.headers.get("Cache-Control")),
            ttl=parsed.ttl_seconds if parsed is not None else None,
        )
        self.metrics.last_success.labels(feed.name).set(now)
        await self._save(state, now + delay)
        return PollResult(feed.name, outcome, emitted, dead, delay)

    async def _failed(
        self, feed: FeedSpec, state: FeedState, outcome: str, *, retry_after: float | None = None
    ) -> PollResult:
        state.record_failure(self.clock())
        state.last_outcome = outcome
        delay = next_delay(
            failure_backoff(state.consecutive_failures, bounds=self.bounds, rng=self.rng),
            bounds=self.bounds,
            retry_after=retry_after,
        )
        if state.consecutive_failures >= self.settings.report_failures_after:
            logger.error(
                "feed %s (%s) has failed %d polls in a row (last: %s); next try in %.0f s",
                feed.name,
                state.url,
                state.consecutive_failures,
                outcome,
                delay,
                extra={"feed_url": state.url, "failures": state.consecutive_failures},
            )
        await self._save(state, self.clock() + delay)
        return PollResult(feed.name, outcome, 0, 0, delay)

    async def _gone(self, feed: FeedSpec, state: FeedState) -> PollResult:
        state.gone = True
        state.record_failure(self.clock())
        state.last_outcome = "410"
        logger.error(
            "feed %s (%s) answered 410 Gone: it will not be polled again; remove it from the list",
            feed.name,
            state.url,
            extra={"feed_url": state.url},
        )
        await self._save(state, None)
        return PollResult(feed.name, "410", 0, 0, None)

    async def _save(self, state: FeedState, next_poll_at: float | None) -> None:
        """Write the state when more than its clock changed (e.g. not after an unchanged 304).

        Unchanged polls of a thousand feeds would otherwise append megabytes an hour to a
        topic that only compaction (which not every broker runs promptly) would shrink.
        """
        state.next_poll_at = next_poll_at
        view = state.durable_view()
        if self._saved.get(state.feed_key) == view:
            return
        await (await self.store.save(state))
        self._saved[state.feed_key] = view


async def run_service(settings: PollerSettings, fetch_settings: FetchSettings) -> int:
    """Start-up, the lease, the polling loop and a graceful stop for ``python -m services.poller``.

    The feeds' states are read only once the lease is held, so that a standby that takes over
    starts from everything its predecessor wrote."""
    feeds = load_feed_list(settings.feeds)
    topics = [*pipeline_topics(settings.topics), state_topic_spec(settings.state_topic)]
    await ensure_topics(settings.kafka, topics)
    stop = GracefulStop()
    stop.install()
    metrics = PollerMetrics()
    producer = make_producer(settings.kafka)
    await producer.start()
    lease = PollerLease(
        settings.kafka, settings.state_topic, producer, seconds=settings.lease_seconds
    )
    poller = Poller(
        feeds,
        settings=settings,
        fetch_settings=fetch_settings,
        producer=producer,
        metrics=metrics,
        lease=lease,
    )
    health = HealthServer(
        host=settings.metrics_host,
        port=settings.metrics_port,
        is_ready=lambda: poller.ready,
    )
    code = 0
    try:
        await health.start()
        await lease.start()
        if not await lease.acquire(stop):
            logger.info("poller stopped while standing by")
            return 0
        metrics.lease_held.set(1)
        keeper = asyncio.create_task(lease.keep(stop))
        keeper.add_done_callback(lambda _: stop.request())
        await poller.start()
        logger.info("polling %d feeds into %s", len(feeds), settings.topics.entries)
        await poller.run(stop)
        keeper.cancel()
        try:
            await keeper
        except LeaseLostError as exc:
            logger.error("%s: stopping (restarted, it stands by)", exc)
            code = 1
        except asyncio.CancelledError:
            pass
        await lease.release()
    finally:
        metrics.lease_held.set(0)
        await poller.close()
        await lease.close()
        await producer.stop()
        await health.stop()
    logger.info("poller stopped")
    return code
