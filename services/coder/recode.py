"""Re-code history: run the coder over a retained range of articles, emit the events again.

Input: a range of ``articles.deduplicated`` (``dedup_result.v1``, which carries the article and
its ``story_id``) or of ``articles.extracted`` (``article.v1``). Output: ``events.diplomatic``
(or a side topic), key ``event_id``. The coding is the coder's own pure core
(``services.coder.core.code_articles``); because ``event_id`` is deterministic, re-coding the
same articles gives the same ids, and consumers of the compacted event topic see each event
replaced by its re-coded state rather than a duplicate.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition

from services.coder import CODER_VERSION
from services.coder.core import code_articles
from services.common import schemas
from services.common.kafka import (
    DeadLetterSender,
    Failure,
    ValidatingProducer,
    decode_value,
    make_producer,
)
from services.common.ranges import CopyPlan, CopyRequest, build_plan, start_consumer
from services.common.settings import KafkaSettings
from services.common.topics import TopicSpec, ensure_topics

logger = logging.getLogger(__name__)

SERVICE = "replay-recode"


@dataclass(frozen=True)
class RecodeInput:
    """The articles to code, in a stable order, and what could not be used (with why)."""

    articles: list[dict[str, Any]]
    rejected: list[tuple[ConsumerRecord, Failure]]


def article_for_coding(raw: bytes | None) -> dict[str, Any] | Failure:
    """The article (with its ``story_id`` when known) in a ``dedup_result.v1`` or ``article.v1``."""
    schema_id = _schema_of(raw)
    if schema_id not in (schemas.DEDUP_RESULT, schemas.ARTICLE):
        unreadable = decode_value(raw, schemas.ARTICLE)
        if isinstance(unreadable, Failure) and unreadable.reason != "schema_invalid":
            return unreadable
        return Failure(
            "unexpected_schema",
            f"expected {schemas.DEDUP_RESULT} or {schemas.ARTICLE}, got {schema_id or 'none'}",
        )
    message = decode_value(raw, schema_id)
    if isinstance(message, Failure):
        return message
    if schema_id == schemas.DEDUP_RESULT:
        article = {**message["article"], "story_id": message["story_id"]}
    else:
        article = dict(message)
    if not str(article.get("text") or "").strip():
        return Failure("not_codable", "the article's text is blank")
    return article


def _schema_of(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    try:
        message = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    schema_id = message.get("schema") if isinstance(message, dict) else None
    return schema_id if isinstance(schema_id, str) else None


def collect_articles(records: Iterable[ConsumerRecord]) -> RecodeInput:
    """Articles in record-timestamp order (then partition, offset), so every run codes alike.

    Aggregation is order-sensitive (the mention that creates an event anchors its id), and the
    order in which partitions are fetched is not stable between runs; the records' own
    coordinates are.
    """
    ordered = sorted(records, key=lambda r: (r.timestamp, r.partition, r.offset))
    articles: list[dict[str, Any]] = []
    rejected: list[tuple[ConsumerRecord, Failure]] = []
    for record in ordered:
        outcome = article_for_coding(record.value)
        if isinstance(outcome, Failure):
            rejected.append((record, outcome))
        else:
            articles.append(outcome)
    return RecodeInput(articles, rejected)


async def read_range(kafka: KafkaSettings, plan: CopyPlan) -> list[ConsumerRecord]:
    """Every record of the plan's ranges (by offset; the time filter applied)."""
    consumer = await start_consumer(kafka, group_id=None)
    try:
        ends = {r.partition: r.end for r in plan.ranges}
        active = [TopicPartition(plan.source, r.partition) for r in plan.ranges if r.count]
        if not active:
            return []
        consumer.assign(active)
        for tp in active:
            consumer.seek(tp, next(r.start for r in plan.ranges if r.partition == tp.partition))
        found: list[ConsumerRecord] = []
        remaining = set(active)
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=500)
            for tp, records in batch.items():
                found.extend(
                    r
                    for r in records
                    if r.offset < ends[tp.partition] and plan.in_time_range(r.timestamp)
                )
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp.partition]:
                    remaining.discard(tp)
        return found
    finally:
        await consumer.stop()


@dataclass(frozen=True)
class RecodeOutcome:
    plan: CopyPlan
    coder_version: str
    articles: int
    rejected: int
    events: list[dict[str, Any]]
    sent: bool


async def recode_range(
    kafka: KafkaSettings,
    request: CopyRequest,
    *,
    coder_version: str = CODER_VERSION,
    dry_run: bool = False,
    event_partitions: int = 4,
) -> RecodeOutcome:
    """Code the articles of ``request``'s range and send the events to ``request.target``.

    Articles that cannot be used go to the source topic's DLQ with the reason; the rest are
    coded. Nothing is sent on a dry run.
    """
    plan = await build_plan(kafka, request)
    records = await read_range(kafka, plan)
    collected = collect_articles(records)
    articles = collected.articles
    events = code_articles(articles, coder_version=coder_version)
    if dry_run:
        return RecodeOutcome(
            plan, coder_version, len(articles), len(collected.rejected), events, sent=False
        )
    await ensure_topics(
        kafka,
        [
            TopicSpec(plan.target, event_partitions, {"cleanup.policy": "compact"}),
            TopicSpec(f"{plan.source}.dlq", 1),
        ],
    )
    producer = make_producer(kafka)
    await producer.start()
    try:
        sender = ValidatingProducer(producer, service=SERVICE)
        dead_letters = DeadLetterSender(sender, service=SERVICE)
        futures = [
            await dead_letters.send(plan.source, letter, record=record)
            for record, letter in collected.rejected
        ]
        futures += [
            await sender.send(plan.target, event, key=event["event_id"]) for event in events
        ]
        for future in futures:
            await future
    finally:
        await producer.stop()
    return RecodeOutcome(
        plan, coder_version, len(articles), len(collected.rejected), events, sent=True
    )
