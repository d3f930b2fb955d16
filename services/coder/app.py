"""The coder service: ``articles.deduplicated`` in, ``events.diplomatic`` (compacted) out.

Two agents, because the aggregation key is only known after coding:

1. ``code`` reads ``dedup_result.v1`` messages (the article is embedded), codes the article
   (spaCy, in a pool of worker processes, each taking the waiting articles up to a batch at a
   time, see ``batches.py``) and sends each
   mention to ``<app_id>-mentions`` keyed by the event's identity key (actors and action
   family). Invalid messages go to ``articles.deduplicated.dlq`` with the reason.
2. ``aggregate`` reads mentions, co-partitioned with the ``<app_id>-events`` table (events by
   identity key, changelog-backed), folds each into its event and emits the event keyed by
   ``event_id``.

Articles are coded several at once, so their mentions may leave in another order than they
came; events do not depend on that order. At-least-once: a redelivered article finds its id
already in the event and changes nothing; ``event_id`` is deterministic, so retries and
replays overwrite rather than duplicate.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import faust
from prometheus_client import Counter, Histogram

from services.coder import CODER_VERSION
from services.coder.aggregate import UPDATE_KINDS, ArticleRef, identity_key
from services.coder.batches import Batches
from services.coder.coding import (
    ALL_ROOTS,
    Mention,
    default_coder,
    mention_from_dict,
    mention_to_dict,
)
from services.coder.core import (
    ArticleInput,
    ArticleInputError,
    EventStore,
    article_from_mapping,
    articles_mentions,
)
from services.coder.settings import CoderSettings
from services.common.faust_app import LAG_INTERVAL_SECONDS, make_faust_app, report_consumer_lag
from services.common.kafka import (
    FIRST_SEEN_HEADER,
    DeadLetterSender,
    Failure,
    ValidatingProducer,
    decode_message,
    encode_json,
    header_value,
    propagate_headers,
    start_producer_patiently,
)
from services.common.messages import DedupResult
from services.common.metrics import END_TO_END_LATENCY, HealthServer, ServiceMetrics
from services.common.times import parse_timestamp
from services.common.workers import WorkerDied, WorkerPool, worker_count

logger = logging.getLogger(__name__)

SERVICE = "coder"

EVENTS_EMITTED = Counter(
    "wirewatch_coder_events_total",
    "Diplomatic events emitted, new or updated",
    ["cameo_root", "kind"],
)
ARTICLES_CODED = Counter("wirewatch_coder_articles_coded_total", "Articles coded")
CODING_DURATION = Histogram(
    "wirewatch_coder_coding_duration_seconds",
    "Time to code one article (NLP and dictionaries; a batch's time shared among its articles)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5),
)


@dataclass
class CoderService:
    """The Faust app, its agents' dependencies and the producer they share."""

    settings: CoderSettings
    metrics: ServiceMetrics
    app: faust.App = field(init=False)
    pool: WorkerPool | None = None
    batches: Batches[ArticleInput, list[Mention]] | None = None
    producer: ValidatingProducer | None = None
    dead_letters: DeadLetterSender | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def started_producer(self) -> ValidatingProducer:
        """The validating producer, started on first use (inside the worker's loop)."""
        async with self._lock:
            if self.producer is None:
                raw = await start_producer_patiently(self.settings.kafka, service=SERVICE)
                self.producer = ValidatingProducer(raw, service=SERVICE)
                self.dead_letters = DeadLetterSender(self.producer, service=SERVICE)
            return self.producer

    async def stop_producer(self) -> None:
        if self.producer is not None:
            await self.producer.producer.stop()
            self.producer = None

    async def dead_letter_sender(self) -> DeadLetterSender:
        producer = await self.started_producer()
        if self.dead_letters is None:
            self.dead_letters = DeadLetterSender(producer, service=SERVICE)
        return self.dead_letters

    @property
    def scope_roots(self) -> frozenset[str] | None:
        return ALL_ROOTS if self.settings.scope == "all" else None

    def coding_pool(self) -> WorkerPool:
        if self.pool is None:
            self.pool = WorkerPool(
                worker_count(self.settings.workers),
                preload=["services.coder.core"],
                initializer=load_worker_coder,
                initargs=(self.scope_roots,),
            )
        return self.pool

    def coding_batches(self) -> Batches[ArticleInput, list[Mention]]:
        """Articles waiting for a coding process; a free process takes up to a batch of them."""
        if self.batches is None:
            pool, scope_roots = self.coding_pool(), self.scope_roots

            async def code_batch(articles: list[ArticleInput]) -> list[list[Mention]]:
                what = f"coding {articles[0].article_id}" + (
                    f" and {len(articles) - 1} more" if len(articles) > 1 else ""
                )
                started = time.perf_counter()
                coded = await pool.run(
                    functools.partial(code_batch_in_worker, articles, scope_roots), what=what
                )
                # The time spent coding, not waiting for a worker; a batch's shared among its
                # articles (they are parsed together).
                share = (time.perf_counter() - started) / len(articles)
                for _ in articles:
                    CODING_DURATION.observe(share)
                return coded

            self.batches = Batches(
                code_batch, lanes=pool.workers, batch_size=self.settings.batch_size
            )
        return self.batches

    async def stop_coding(self) -> None:
        if self.batches is not None:
            await self.batches.stop()
            self.batches = None
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None


def load_worker_coder(scope_roots: frozenset[str] | None) -> None:
    """Load the pipeline and dictionaries when a worker process starts, not on its first article."""
    default_coder(scope_roots)


def code_batch_in_worker(
    articles: list[ArticleInput], scope_roots: frozenset[str] | None
) -> list[list[Mention]]:
    return articles_mentions(default_coder(scope_roots), articles)


def mentions_topic_name(settings: CoderSettings) -> str:
    return f"{settings.app_id}-mentions"


def create_app(
    settings: CoderSettings, metrics: ServiceMetrics, health: HealthServer | None = None
) -> CoderService:
    """Build the Faust app with its topics, table and agents; ``health`` starts with it."""
    service = CoderService(settings=settings, metrics=metrics)
    # Every series exists from the start at 0: Prometheus's increase() cannot see the first
    # step of a series born at 1, so after a restart the "no events" alert would read nothing.
    for root in sorted(ALL_ROOTS):
        for kind in UPDATE_KINDS:
            EVENTS_EMITTED.labels(cameo_root=root, kind=kind)
    app = make_faust_app(
        settings.app_id,
        settings.kafka,
        store=settings.store,
        partitions=settings.partitions,
        datadir=str(settings.data_dir / settings.app_id),
    )
    service.app = app
    topics = settings.topics
    articles_topic = app.topic(topics.deduplicated, value_serializer="raw", key_serializer="raw")
    mentions_topic = app.topic(
        mentions_topic_name(settings),
        value_serializer="raw",
        key_serializer="raw",
        partitions=settings.partitions,
        internal=True,
    )
    table = app.Table(f"{settings.app_id}-events", default=None, partitions=settings.partitions)

    # Enough actors to fill a batch for every worker process; the consumer commits an offset
    # only when every article before it is done (Faust tracks the gaps).
    @app.agent(articles_topic, concurrency=service.coding_pool().workers * settings.batch_size)
    async def code(stream: Any) -> None:
        async for event in stream.events():
            await _code_one(service, event, mentions_topic)

    @app.agent(mentions_topic)
    async def aggregate(stream: Any) -> None:
        store = EventStore(table, coder_version=CODER_VERSION)
        async for event in stream.events():
            await _aggregate_one(service, store, event)

    @app.task  # type: ignore[untyped-decorator]
    async def warm_up() -> None:
        """Load the NLP pipeline before the first article, not while a partition waits."""
        if health is not None:
            await health.start()
        pool = service.coding_pool()
        await pool.start_all(functools.partial(load_worker_coder, service.scope_roots))
        await service.started_producer()
        metrics.ready.set(1)
        logger.info(
            "coder ready (scope %s, version %s, %d coding processes)",
            settings.scope,
            CODER_VERSION,
            pool.workers,
        )

    @app.timer(interval=LAG_INTERVAL_SECONDS)  # type: ignore[untyped-decorator]
    async def report_lag() -> None:
        # The mentions topic too: a backed-up aggregate agent shows there.
        await report_consumer_lag(
            app, metrics, {topics.deduplicated, mentions_topic_name(settings)}
        )

    @app.service
    class ProducerCloser(faust.Service):
        async def on_stop(self) -> None:
            metrics.ready.set(0)
            await service.stop_producer()
            await service.stop_coding()
            if health is not None:
                await health.stop()

    return service


def _headers(event: Any) -> list[tuple[str, bytes]]:
    raw = event.headers or {}
    items = raw.items() if isinstance(raw, dict) else raw
    return [(k, v if isinstance(v, bytes) else str(v).encode()) for k, v in items]


async def _send_dead_letter(service: CoderService, event: Any, letter: Failure) -> None:
    """Send what could not be used to its topic's DLQ, with the original bytes and position."""
    message = event.message
    sender = await service.dead_letter_sender()
    future = await sender.send(
        message.topic,
        letter,
        original=event.value,
        key=message.key,
        partition=message.partition,
        offset=message.offset,
        headers=_headers(event),
    )
    await future
    service.metrics.dead_letters.labels(topic=message.topic, reason=letter.reason).inc()


async def _code_one(service: CoderService, event: Any, mentions_topic: Any) -> None:
    settings = service.settings
    topic = settings.topics.deduplicated
    metrics = service.metrics
    metrics.messages_in.labels(topic=topic).inc()
    headers = _headers(event)
    decoded = decode_message(event.value, DedupResult)
    if isinstance(decoded, DedupResult):
        try:
            article = article_from_mapping(decoded.article.to_message(), story_id=decoded.story_id)
        except ArticleInputError as exc:
            decoded = Failure("invalid_article", str(exc))
    if isinstance(decoded, Failure):
        await _send_dead_letter(service, event, decoded)
        return
    try:
        mentions = await service.coding_batches().submit(article)
    except WorkerDied as exc:
        await _send_dead_letter(service, event, Failure("coding_failed", str(exc)))
        return
    except Exception as exc:  # an article that crashes the NLP must not stop the service
        logger.exception("coding failed for %s", article.article_id)
        letter = Failure("coding_failed", f"{type(exc).__name__}: {exc}")
        await _send_dead_letter(service, event, letter)
        return
    ARTICLES_CODED.inc()
    first_seen = header_value(headers, FIRST_SEEN_HEADER)
    ref = article.ref
    for mention in mentions:
        await mentions_topic.send(
            key=identity_key(mention).encode(),
            value=encode_json(
                {
                    "mention": mention_to_dict(mention),
                    "article": {
                        "article_id": ref.article_id,
                        "url": ref.url,
                        "source": ref.source,
                        "first_seen": ref.first_seen,
                        "story_id": ref.story_id,
                    },
                    "first_seen_epoch": first_seen.decode() if first_seen else None,
                }
            ),
            headers=propagate_headers(headers),
        )


def decode_mention(raw: bytes | None) -> tuple[Mention, ArticleRef, str | None] | Failure:
    """A message of the mentions topic, or why it is not one (anything may be written there)."""
    try:
        value = json.loads(raw or b"")
        mention = mention_from_dict(value["mention"])
        article = ArticleRef(**value["article"])
        first_seen = value.get("first_seen_epoch")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return Failure("invalid_json", f"not JSON: {exc}")
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        return Failure("invalid_mention", f"not a mention: {type(exc).__name__}: {exc}")
    return mention, article, first_seen if isinstance(first_seen, str) else None


async def _aggregate_one(service: CoderService, store: EventStore, event: Any) -> None:
    decoded = decode_mention(event.value)
    if isinstance(decoded, Failure):
        await _send_dead_letter(service, event, decoded)
        return
    mention, article, first_seen_header = decoded
    update, commit = store.prepare(mention, article)
    if update is None:
        return
    producer = await service.started_producer()
    events_topic = service.settings.topics.events
    headers = propagate_headers(_headers(event))
    future = await producer.send(
        events_topic, update.event, key=update.event["event_id"], headers=headers
    )
    await future
    for replaced in update.replaces:
        # The event's id moved to an earlier anchor date, or events joined: delete the old keys
        # (compaction).
        tombstone = await producer.producer.send(
            events_topic, None, key=replaced.encode(), headers=list(headers)
        )
        await tombstone
    commit()
    service.metrics.messages_out.labels(topic=events_topic).inc()
    EVENTS_EMITTED.labels(cameo_root=mention.action.root, kind=update.kind).inc()
    first_seen = _first_seen_epoch(first_seen_header, article.first_seen)
    if first_seen is not None:
        END_TO_END_LATENCY.observe(max(0.0, time.time() - first_seen))


def _first_seen_epoch(header: str | None, fallback: str) -> float | None:
    """The feed entry's first-seen time: the header, else the article's ``first_seen``."""
    if header:
        try:
            return float(header)
        except ValueError:
            logger.debug("unparsable %s header %r", FIRST_SEEN_HEADER, header)
    moment = parse_timestamp(fallback)
    if moment is None or moment.year < 2000:
        return None
    return moment.timestamp()
