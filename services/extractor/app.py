"""The extractor service: ``feeds.entries`` in, ``articles.extracted`` out.

Failures go to two places: messages that are not valid feed entries (bad JSON, schema) to
``feeds.entries.dlq``; entries whose page could not become an article (timeout, HTTP status,
too large, not HTML, blocked address, empty extraction, ...) to ``articles.dlq``.

How it keeps both cores busy without losing anything:

- every consumed entry becomes its own task (fetch with retries, then extraction in a process
  pool of ``workers`` processes), up to ``max_in_flight`` at once, so a slow host or a retry
  backoff delays only its own entry;
- each partition has a *lane* that emits results strictly in offset order;
- an offset is committed only once the output of that entry and of every entry before it in
  its partition has been acknowledged by the broker (at-least-once; a crash replays the rest).
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.http import FetchSettings, HostPoliteness, make_session
from services.common.kafka import (
    Failure,
    ValidatingProducer,
    decode_message,
    make_consumer,
    make_producer,
    propagate_headers,
)
from services.common.messages import Article, DeadLetter, FeedEntry
from services.common.metrics import HealthServer, ServiceMetrics
from services.common.settings import ServiceSettings, TopicNames
from services.common.shutdown import GracefulStop
from services.common.times import utc_now_iso
from services.common.topics import ensure_topics, pipeline_topics
from services.common.workers import WorkerDied, WorkerPool, WorkerTimedOut, worker_count
from services.extractor.extract import ExtractedPage, build_article, extract_page
from services.extractor.fetch import FetchedPage, RetryPolicy, fetch_page

logger = logging.getLogger(__name__)

SERVICE = "extractor"
FETCH_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)
EXTRACT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5)


class ExtractorSettings(ServiceSettings):
    """Everything the extractor reads from the environment (``WIREWATCH_EXTRACTOR_*``)."""

    model_config = SettingsConfigDict(
        env_prefix="WIREWATCH_EXTRACTOR_", frozen=True, extra="ignore"
    )

    group_id: str = "wirewatch-extractor"
    workers: int = Field(default=0, description="extraction processes; 0 = one per CPU core")
    max_in_flight: int = Field(default=64, ge=1, description="entries being worked on at once")
    max_attempts: int = Field(default=3, ge=1, description="tries for timeouts, 5xx and 429")
    retry_base_seconds: float = 1.0
    retry_max_seconds: float = 30.0
    extraction_timeout_seconds: float = Field(
        default=60.0, gt=0, description="a page still extracting after this is dead-lettered"
    )
    commit_interval_seconds: float = 1.0
    drain_timeout_seconds: float = 30.0
    linger_ms: int = Field(default=20, ge=0, description="producer batching delay")
    fetch: FetchSettings = Field(default_factory=FetchSettings)

    def worker_count(self) -> int:
        return worker_count(self.workers)

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(self.max_attempts, self.retry_base_seconds, self.retry_max_seconds)


class ExtractorMetrics(ServiceMetrics):
    """The shared service metrics plus the extractor's own (names from the metrics contract)."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        super().__init__(SERVICE, registry)
        prefix = f"wirewatch_{SERVICE}"
        self.fetch_duration = Histogram(
            f"{prefix}_fetch_duration_seconds",
            "Time to fetch one page (one attempt, redirects included)",
            buckets=FETCH_BUCKETS,
            registry=registry,
        )
        self.fetch_outcomes = Counter(
            f"{prefix}_fetch_outcomes_total",
            "Fetch attempts by outcome (ok or the failure reason)",
            ["reason"],
            registry=registry,
        )
        self.fetched_bytes = Counter(
            f"{prefix}_fetched_bytes_total", "Decompressed page bytes fetched", registry=registry
        )
        self.extraction_duration = Histogram(
            f"{prefix}_extraction_duration_seconds",
            "trafilatura extraction time per page, in the worker process",
            buckets=EXTRACT_BUCKETS,
            registry=registry,
        )
        self.articles_emitted = Counter(
            f"{prefix}_articles_emitted_total", "Articles sent to the articles topic",
            registry=registry,
        )  # fmt: skip

    def observe_fetch(self, outcome: str, seconds: float, size: int) -> None:
        self.fetch_duration.observe(seconds)
        self.fetch_outcomes.labels(reason=outcome).inc()
        if size:
            self.fetched_bytes.inc(size)


@dataclass(frozen=True)
class Output:
    """What one consumed entry turns into: one message for one topic."""

    topic: str
    message: Article | DeadLetter
    reason: str | None = None  # set for dead letters


def extraction_pool(workers: int) -> WorkerPool:
    """Worker processes forked from a server that has already imported trafilatura."""
    return WorkerPool(workers, preload=["services.extractor.extract"])


@dataclass
class Lane:
    """One partition's results in offset order, and the acknowledgements still awaited."""

    partition: TopicPartition
    queue: asyncio.Queue[tuple[ConsumerRecord, asyncio.Task[Output]]] = field(
        default_factory=asyncio.Queue
    )
    acks: collections.deque[tuple[int, asyncio.Future[Any]]] = field(
        default_factory=collections.deque
    )
    emitter: asyncio.Task[None] | None = None
    in_flight: int = 0
    committable: int | None = None
    committed: int | None = None

    def settle(self) -> None:
        """Advance the committable offset over every acknowledged output, in order."""
        while self.acks and self.acks[0][1].done():
            offset, ack = self.acks.popleft()
            ack.result()  # a failed send raises here: nothing after it gets committed
            self.committable = offset + 1

    @property
    def idle(self) -> bool:
        return self.in_flight == 0 and not self.acks


class Extractor:
    """Consumes entries, works on many at once, emits in order, commits what was acknowledged."""

    def __init__(
        self,
        settings: ExtractorSettings,
        *,
        consumer: AIOKafkaConsumer,
        producer: ValidatingProducer,
        session: Any,
        pool: WorkerPool,
        metrics: ExtractorMetrics,
        stop: GracefulStop,
    ) -> None:
        self.settings = settings
        self.consumer = consumer
        self.producer = producer
        self.session = session
        self.pool = pool
        self.metrics = metrics
        self.stop = stop
        self.topics = settings.topics
        self.politeness = HostPoliteness.from_settings(settings.fetch)
        self.retry = settings.retry_policy()
        self.lanes: dict[TopicPartition, Lane] = {}
        self.pool_ready = False

    # ---- the loop -------------------------------------------------------------------------

    async def warm_up(self) -> None:
        """Start every worker process before consuming, so readiness means full speed."""
        page = b"<html><body><article><p>warm up</p></article></body></html>"
        await self.pool.start_all(functools.partial(extract_page, page))
        self.pool_ready = True

    def is_ready(self) -> bool:
        return self.pool_ready and bool(self.consumer.assignment())

    async def run(self) -> None:
        last_commit = time.monotonic()
        while not self.stop.stopping:
            free = self.settings.max_in_flight - sum(lane.in_flight for lane in self.lanes.values())
            if free <= 0:
                await asyncio.sleep(0.02)
            else:
                batch = await self.consumer.getmany(timeout_ms=200, max_records=free)
                for partition, records in batch.items():
                    lane = self._lane(partition, records[0].offset)
                    for record in records:
                        self.metrics.messages_in.labels(topic=record.topic).inc()
                        lane.in_flight += 1
                        task = asyncio.create_task(self._work(record))
                        lane.queue.put_nowait((record, task))
            self.metrics.ready.set(1 if self.is_ready() else 0)
            if time.monotonic() - last_commit >= self.settings.commit_interval_seconds:
                await self.commit()
                last_commit = time.monotonic()
        await self.drain()

    async def drain(self) -> None:
        """On stop: let work in flight finish (bounded), then commit what was acknowledged."""
        deadline = time.monotonic() + self.settings.drain_timeout_seconds
        while time.monotonic() < deadline and not all(lane.idle for lane in self.lanes.values()):
            for lane in self.lanes.values():
                lane.settle()
            await asyncio.sleep(0.05)
        await self.commit()
        for lane in list(self.lanes.values()):
            await self._close_lane(lane)

    async def commit(self) -> None:
        offsets: dict[TopicPartition, int] = {}
        for partition, lane in self.lanes.items():
            if lane.emitter is not None and lane.emitter.done() and not lane.emitter.cancelled():
                lane.emitter.result()  # a bug in the emitter stops the service, loudly
            lane.settle()
            if lane.committable is not None and lane.committable != lane.committed:
                offsets[partition] = lane.committable
        if offsets:
            await self.consumer.commit(offsets)
            for partition, offset in offsets.items():
                self.lanes[partition].committed = offset
        self._update_lag()

    def _update_lag(self) -> None:
        lags = {}
        for partition, lane in self.lanes.items():
            highwater = self.consumer.highwater(partition)
            if highwater is None:
                continue
            done = lane.committed if lane.committed is not None else highwater
            lags[partition] = max(highwater - done, 0)
        self.metrics.set_consumer_lag(lags)

    # ---- lanes ----------------------------------------------------------------------------

    def _lane(self, partition: TopicPartition, first_offset: int) -> Lane:
        lane = self.lanes.get(partition)
        if lane is None:
            # Consumption resumes at the committed offset, so that is where the lane starts.
            lane = Lane(partition, committed=first_offset)
            lane.emitter = asyncio.create_task(self._emit(lane))
            self.lanes[partition] = lane
        return lane

    async def _emit(self, lane: Lane) -> None:
        """Send each entry's output in offset order; the ack is awaited by ``settle``."""
        while True:
            record, task = await lane.queue.get()
            output = await task
            ack = await self.producer.send(
                output.topic,
                output.message,
                key=record.key,
                headers=propagate_headers(record.headers),
            )
            lane.acks.append((record.offset, ack))
            lane.in_flight -= 1
            self.metrics.messages_out.labels(topic=output.topic).inc()
            if output.reason is not None:
                # Labelled by the topic the entry came from, as every service labels its dead
                # letters (the alert names the input that is failing).
                self.metrics.dead_letters.labels(topic=record.topic, reason=output.reason).inc()
            else:
                self.metrics.articles_emitted.inc()

    async def _close_lane(self, lane: Lane) -> None:
        if lane.emitter is not None:
            lane.emitter.cancel()
        while not lane.queue.empty():
            _, task = lane.queue.get_nowait()
            task.cancel()
        self.lanes.pop(lane.partition, None)

    async def revoke(self, partitions: list[TopicPartition]) -> None:
        """Before losing partitions: commit what is acknowledged, drop the rest (replayed)."""
        await self.commit()
        for partition in partitions:
            lane = self.lanes.get(partition)
            if lane is not None:
                await self._close_lane(lane)
        self._update_lag()  # the partitions gone stop reporting their lag from here

    # ---- one entry ------------------------------------------------------------------------

    async def _work(self, record: ConsumerRecord) -> Output:
        entry = decode_message(record.value, FeedEntry)
        if isinstance(entry, Failure):
            return self._dead(record, entry, topic=TopicNames.dlq(record.topic))
        url = entry.url
        fetched = await fetch_page(
            self.session,
            url,
            settings=self.settings.fetch,
            politeness=self.politeness,
            retry=self.retry,
            observe=self.metrics.observe_fetch,
        )
        if isinstance(fetched, Failure):
            return self._dead(record, fetched)
        extracted = await self._extract(fetched)
        if isinstance(extracted, Failure):
            letter = Failure(
                extracted.reason,
                extracted.error,
                {"url": url, "fetched_url": fetched.url, **(extracted.details or {})},
                attempts=fetched.attempts,
            )
            return self._dead(record, letter)
        self.metrics.extraction_duration.observe(extracted.extract_seconds)
        article = build_article(
            extracted,
            fetched_url=fetched.url,
            entry=entry,
            fetch_seconds=fetched.seconds,
            fetched_at=utc_now_iso(),
        )
        return Output(self.topics.articles, article)

    async def _extract(self, page: FetchedPage) -> ExtractedPage | Failure:
        """Extract in the pool; a dead worker costs one retry on a fresh pool, then a DLQ."""
        call = functools.partial(
            extract_page, page.body, url=page.url, content_type=page.content_type
        )
        try:
            return await self.pool.run(
                call,
                what=f"extracting {page.url}",
                timeout=self.settings.extraction_timeout_seconds,
            )
        except WorkerTimedOut as exc:
            return Failure("extraction_timeout", str(exc), {"bytes": len(page.body)})
        except WorkerDied:
            return Failure("extraction_failed", "the extraction worker process died twice")
        except Exception as exc:  # a page that crashes the parser must not stop the service
            logger.exception("extraction failed for %s", page.url)
            return Failure("extraction_failed", f"{type(exc).__name__}: {exc}")

    def _dead(self, record: ConsumerRecord, letter: Failure, *, topic: str | None = None) -> Output:
        message = letter.dead_letter(service=SERVICE, record=record)
        logger.warning(
            "entry at %s[%d]@%d failed: %s (%s)",
            record.topic,
            record.partition,
            record.offset,
            letter.reason,
            letter.error,
        )
        return Output(topic or self.topics.failed_articles, message, reason=letter.reason)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self) -> None:
        self.extractor: Extractor | None = None

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        if self.extractor is not None and revoked:
            await self.extractor.revoke(list(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        logger.info("assigned %s", sorted(f"{tp.topic}[{tp.partition}]" for tp in assigned))


async def run_extractor(
    settings: ExtractorSettings,
    *,
    stop: GracefulStop | None = None,
    registry: CollectorRegistry = REGISTRY,
) -> None:
    """Run the service until SIGTERM/SIGINT (or ``stop`` is requested), then drain and commit.

    Signal handlers are installed only when no ``stop`` is given (the process's own service).
    """
    if stop is None:
        stop = GracefulStop()
        stop.install()
    await ensure_topics(settings.kafka, pipeline_topics(settings.topics))
    metrics = ExtractorMetrics(registry)
    pool = extraction_pool(settings.worker_count())
    # Articles are large and come in bursts: a longer linger batches them into fewer requests.
    producer = make_producer(settings.kafka, linger_ms=settings.linger_ms)
    listener = _Rebalance()
    consumer = make_consumer(settings.kafka, group_id=settings.group_id)
    consumer.subscribe([settings.topics.entries], listener=listener)
    extractor: Extractor | None = None
    health = HealthServer(
        host=settings.metrics_host,
        port=settings.metrics_port,
        is_ready=lambda: extractor is not None and extractor.is_ready(),
        registry=registry,
    )
    await health.start()
    await producer.start()
    await consumer.start()
    try:
        async with make_session(settings.fetch) as session:
            extractor = Extractor(
                settings,
                consumer=consumer,
                producer=ValidatingProducer(producer, service=SERVICE),
                session=session,
                pool=pool,
                metrics=metrics,
                stop=stop,
            )
            listener.extractor = extractor
            await extractor.warm_up()
            logger.info(
                "extractor consuming %s with %d worker processes",
                settings.topics.entries,
                settings.worker_count(),
            )
            await extractor.run()
    finally:
        metrics.ready.set(0)
        await consumer.stop()
        await producer.stop()
        await health.stop()
        pool.shutdown()
        logger.info("extractor stopped")
