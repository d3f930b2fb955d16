"""The dedup service: ``articles.extracted`` in, ``articles.deduplicated`` out (key: article id).

Two agents. The intake agent validates each article (invalid ones go to
``articles.extracted.dlq`` with the reason) and forwards it to the one-partition window topic:
deduplication compares every article with every recent one, so all articles must meet in one
place whatever partition the extractor wrote them to. The window agent asks the pure core
(``engine.Deduplicator``) for a decision, records the article in the ``window`` table (backed by
its changelog topic, so a restarted or rescheduled worker gets its window back) and emits the
``dedup_result.v1`` message. Delivery is at-least-once; a reprocessed article is answered from
the table, so its result is the same.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import faust
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from services.common import schemas
from services.common.faust_app import LAG_INTERVAL_SECONDS, make_faust_app, report_consumer_lag
from services.common.kafka import (
    DeadLetterSender,
    Failure,
    Headers,
    ValidatingProducer,
    decode_value,
    propagate_headers,
    start_producer_patiently,
)
from services.common.metrics import HealthServer, ServiceMetrics
from services.dedup.engine import OUTCOMES, Deduplicator
from services.dedup.records import (
    article_in,
    restore_record,
    result_message,
    utc_now_iso,
    window_record,
)
from services.dedup.settings import DedupSettings

logger = logging.getLogger(__name__)

SERVICE = "dedup"
WINDOW_KEY = b"window"
CANDIDATE_BUCKETS = (0, 1, 2, 4, 8, 12, 16, 24, 32, 48, 64)
LOOKUP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class DedupMetrics(ServiceMetrics):
    """The shared service metrics plus what dedup decides and how hard it looks."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        super().__init__(SERVICE, registry)
        self.articles = Counter(
            "wirewatch_dedup_articles_total", "Articles by decision", ["outcome"], registry=registry
        )
        for outcome in OUTCOMES:  # at 0 from the start, so increase() sees the first decisions
            self.articles.labels(outcome=outcome)
        self.candidates = Histogram(
            "wirewatch_dedup_candidates",
            "Earlier articles compared with each article",
            buckets=CANDIDATE_BUCKETS,
            registry=registry,
        )
        self.lookup_duration = Histogram(
            "wirewatch_dedup_lookup_duration_seconds",
            "Time to fingerprint an article, find and compare its candidates",
            buckets=LOOKUP_BUCKETS,
            registry=registry,
        )
        self.window_articles = Gauge(
            "wirewatch_dedup_window_articles",
            "Articles in the deduplication window",
            registry=registry,
        )


def headers_list(headers: Any) -> Headers:
    """Faust hands headers over as a mapping or a list of pairs; make them a list of pairs."""
    if not headers:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [(str(k), v if isinstance(v, bytes) else str(v).encode()) for k, v in items]


@dataclass
class DedupService:
    """The Faust app with its topics, table and agents, built from one settings object."""

    settings: DedupSettings
    metrics: DedupMetrics
    app: faust.App = field(init=False)
    ready: bool = False

    def __post_init__(self) -> None:
        s = self.settings
        self.app = make_faust_app(
            s.app_id,
            s.kafka,
            store=s.store,
        )
        self.articles_topic = self.app.topic(
            s.topics.articles, key_serializer="raw", value_serializer="raw"
        )
        self.window_topic = self.app.topic(
            self.window_topic_name(s),
            partitions=1,
            key_serializer="raw",
            value_serializer="raw",
            internal=True,
        )
        self.table = self.app.Table("window", partitions=1, key_type=str, default=None)
        self.engine = self._new_engine()
        self.producer: ValidatingProducer | None = None
        self.dead_letters: DeadLetterSender | None = None
        self.app.agent(self.articles_topic, name="intake")(self.intake)
        self.app.agent(self.window_topic, name="decide")(self.decide)
        self.app.task(self._start_health)
        self.app.timer(interval=LAG_INTERVAL_SECONDS)(self._report_lag)
        self.app.on_before_shutdown.connect(self._on_shutdown)
        self._producer_lock = asyncio.Lock()
        self._health: HealthServer | None = None

    @staticmethod
    def window_topic_name(settings: DedupSettings) -> str:
        return f"{settings.app_id}-window"

    def _new_engine(self) -> Deduplicator:
        s = self.settings
        return Deduplicator(
            window_seconds=s.window_hours * 3600,
            posting_limit=s.posting_limit,
            candidate_limit=s.candidate_limit,
        )

    async def _start_health(self) -> None:
        self._health = HealthServer(
            host=self.settings.metrics_host,
            port=self.settings.metrics_port,
            is_ready=lambda: self.ready,
        )
        await self._health.start()

    async def _report_lag(self) -> None:
        """Lag on the input topic and on the window topic that every article passes through."""
        topics = {self.settings.topics.articles, self.window_topic_name(self.settings)}
        await report_consumer_lag(self.app, self.metrics, topics)

    async def _on_shutdown(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        """After Faust stopped consuming: flush and close our producer, stop serving probes."""
        self.ready = False
        self.metrics.ready.set(0)
        if self.producer is not None:
            await self.producer.producer.stop()
        if self._health is not None:
            await self._health.stop()

    async def _producer(self) -> ValidatingProducer:
        """The aiokafka producer for results and dead letters, started once for both agents."""
        async with self._producer_lock:
            if self.producer is None:
                raw = await start_producer_patiently(self.settings.kafka, service=SERVICE)
                self.producer = ValidatingProducer(raw, service=SERVICE)
                self.dead_letters = DeadLetterSender(self.producer, service=SERVICE)
        return self.producer

    async def intake(self, stream: Any) -> AsyncIterator[None]:
        """Validate and forward to the window topic; what fails validation goes to the DLQ."""
        topic = self.settings.topics.articles
        await self._producer()
        self.ready = True
        self.metrics.ready.set(1)
        async for event in stream.events():
            self.metrics.messages_in.labels(topic=topic).inc()
            headers = headers_list(event.headers)
            decoded = decode_value(event.value, schemas.ARTICLE)
            if isinstance(decoded, Failure):
                await self._dead_letter(decoded, event, headers)
            else:
                # Wait for the broker's acknowledgement: the input offset is committed after this.
                sent = await self.window_topic.send(
                    key=WINDOW_KEY, value=event.value, headers=propagate_headers(headers)
                )
                await sent
            yield None

    async def _dead_letter(self, letter: Failure, event: Any, headers: Headers) -> None:
        assert self.dead_letters is not None  # noqa: S101 - set by _producer() before the loop
        topic = self.settings.topics.articles
        future = await self.dead_letters.send(
            topic,
            letter,
            original=event.value,
            key=event.key,
            partition=event.message.partition,
            offset=event.message.offset,
            headers=headers,
        )
        await future
        self.metrics.dead_letters.labels(topic=topic, reason=letter.reason).inc()

    def _rebuild_if_needed(self) -> None:
        """Rebuild the in-memory index from the table when they disagree (start, recovery).

        Both change together while processing, so a size mismatch means the table was recovered
        or reassigned underneath; comparing sizes is O(1) with the memory store.
        """
        if len(self.table) == len(self.engine.window):
            return
        stored = {key: value for key, value in self.table.items() if value is not None}
        self.engine = self._new_engine()
        restored = [restore_record(key, value) for key, value in stored.items()]
        restored.sort(key=lambda item: (item[0].event_time, item[0].article_id))
        for entry, decision, _ in restored:
            self.engine.restore(entry, decision)
        logger.info("window rebuilt from the table: %d articles", len(restored))

    async def decide(self, stream: Any) -> AsyncIterator[None]:
        out_topic = self.settings.topics.deduplicated
        producer = await self._producer()
        async for event in stream.events():
            self._rebuild_if_needed()
            decoded = decode_value(event.value, schemas.ARTICLE)
            if isinstance(decoded, Failure):  # validated at intake; kept for safety
                await self._dead_letter(decoded, event, headers_list(event.headers))
                yield None
                continue
            started = time.perf_counter()
            decision, entry = self.engine.decide(article_in(decoded))
            self.metrics.lookup_duration.observe(time.perf_counter() - started)
            if entry is not None:
                decided_at = utc_now_iso()
                self.table[decision.article_id] = window_record(entry, decision, decided_at)
                self.metrics.articles.labels(outcome=decision.outcome).inc()
                self.metrics.candidates.observe(decision.candidates)
            else:
                decided_at = (self.table.get(decision.article_id) or {}).get(
                    "decided_at", utc_now_iso()
                )
            for evicted in self.engine.evict():
                if evicted in self.table:
                    del self.table[evicted]
            self.metrics.window_articles.set(len(self.engine.window))
            message = result_message(decision, decoded, decided_at)
            future = await producer.send(
                out_topic,
                message,
                key=decision.article_id,
                headers=propagate_headers(headers_list(event.headers)),
            )
            await future
            self.metrics.messages_out.labels(topic=out_topic).inc()
            yield None
