"""Kafka clients configured once, a producer that validates, and the dead-letter helper.

Delivery is at-least-once everywhere: consumers never auto-commit; a service commits an offset
only after whatever it produced for that message has been acknowledged.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import socket
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaConnectionError

from services.common import schemas
from services.common.errors import BrokerUnreachableError, SchemaValidationError
from services.common.messages import DeadLetter, Message
from services.common.settings import KafkaSettings, TopicNames
from services.common.times import utc_now_iso

logger = logging.getLogger(__name__)

SCHEMA_HEADER = "wirewatch-schema"
TRACE_HEADER = "wirewatch-trace-id"
# When the feed entry was first seen (epoch seconds as text); the end-to-end latency clock.
FIRST_SEEN_HEADER = "wirewatch-first-seen"

Headers = list[tuple[str, bytes]]
M = TypeVar("M", bound=Message)

# A dead letter carries the original bytes base64-encoded (4/3 the size) beside its own fields;
# keeping at most 1 MiB of them keeps it well under the producers' 4 MiB request cap, so a huge
# poison message still gets its dead letter instead of failing the send (and the service).
MAX_DEAD_LETTER_ORIGINAL_BYTES = 1024 * 1024

# Headers that travel with a message through every stage of the pipeline.
PROPAGATED_HEADERS = (TRACE_HEADER, FIRST_SEEN_HEADER)


def make_producer(kafka: KafkaSettings, **overrides: Any) -> AIOKafkaProducer:
    options: dict[str, Any] = {
        **kafka.client_options(),
        "acks": "all",
        "enable_idempotence": kafka.enable_idempotence,
        # aiokafka's gzip compresses at level 9 (about 1 ms for a 7 KB article); zstd takes about
        # 0.06 ms for nearly the same size (ratio 0.35 against 0.32, measured on eval articles).
        "compression_type": "zstd",
        "linger_ms": 5,
        "max_request_size": 4 * 1024 * 1024,
    }
    if kafka.one_record_per_batch:
        options["max_batch_size"] = 1
        options["linger_ms"] = 0
    options.update(overrides)
    return AIOKafkaProducer(**options)


async def start_producer_patiently(
    kafka: KafkaSettings,
    *,
    service: str,
    first_delay: float = 1.0,
    max_delay: float = 10.0,
) -> AIOKafkaProducer:
    """A started producer, waiting out a broker that cannot be reached yet.

    For producers started lazily inside a running Faust worker: there a failed start crashes the
    whole worker, so an outage that happens to span the start would kill a healthy service.
    """
    delay = first_delay
    while True:
        producer = make_producer(kafka)
        try:
            await producer.start()
            return producer
        except KafkaConnectionError as exc:
            await producer.stop()
            logger.warning("%s: broker unreachable (%s); retrying in %.0fs", service, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)


def make_consumer(
    kafka: KafkaSettings, *topics: str, group_id: str | None, **overrides: Any
) -> AIOKafkaConsumer:
    options: dict[str, Any] = {
        **kafka.client_options(),
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": kafka.session_timeout_ms,
        "heartbeat_interval_ms": kafka.heartbeat_interval_ms,
        "max_poll_interval_ms": 300_000,
        "fetch_max_wait_ms": kafka.fetch_max_wait_ms,
        "fetch_max_bytes": 16 * 1024 * 1024,
        "max_partition_fetch_bytes": 4 * 1024 * 1024,
    }
    options.update(overrides)
    return AIOKafkaConsumer(*topics, **options)


async def start_consumer(consumer: AIOKafkaConsumer) -> None:
    """Start ``consumer`` so that stopping it at once is clean.

    A consumer without a group starts a background task; stopped before that task first runs,
    aiokafka 0.14's ``stop()`` raises ``CancelledError`` (``wirewatch tail`` of a missing topic
    ended in that traceback). Yielding once lets the task start.
    """
    await consumer.start()
    await asyncio.sleep(0)


def encode_json(message: Mapping[str, Any]) -> bytes:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def header_value(headers: Sequence[tuple[str, bytes]] | None, name: str) -> bytes | None:
    for key, value in headers or ():
        if key == name:
            return value
    return None


def propagate_headers(incoming: Sequence[tuple[str, bytes]] | None) -> Headers:
    """The incoming headers that must follow the message downstream (trace id, first seen)."""
    kept = [(k, v) for k, v in incoming or () if k in PROPAGATED_HEADERS]
    if header_value(kept, TRACE_HEADER) is None:
        kept.append((TRACE_HEADER, uuid.uuid4().hex.encode()))
    return kept


class ValidatingProducer:
    """Sends JSON messages that have passed their schema; nothing invalid reaches a topic."""

    def __init__(self, producer: AIOKafkaProducer, *, service: str) -> None:
        self.producer = producer
        self.service = service

    async def send(
        self,
        topic: str,
        message: Message | Mapping[str, Any],
        *,
        key: str | bytes | None,
        headers: Headers | None = None,
        timestamp_ms: int | None = None,
    ) -> Any:
        """Validate and send; returns the future of the broker's acknowledgement."""
        if isinstance(message, Message):
            message = message.to_message()
        schema_id = str(message.get("schema", ""))
        if schema_id not in schemas.ALL_SCHEMA_IDS:
            raise SchemaValidationError(schema_id or "(none)", "message has no known 'schema'")
        schemas.validate(schema_id, message)
        all_headers = [h for h in headers or () if h[0] != SCHEMA_HEADER]
        all_headers.append((SCHEMA_HEADER, schema_id.encode()))
        if header_value(all_headers, TRACE_HEADER) is None:
            all_headers.append((TRACE_HEADER, uuid.uuid4().hex.encode()))
        key_bytes = key.encode("utf-8") if isinstance(key, str) else key
        return await self.producer.send(
            topic,
            encode_json(message),
            key=key_bytes,
            headers=all_headers,
            timestamp_ms=timestamp_ms,
        )

    async def send_and_wait(
        self,
        topic: str,
        message: Message | Mapping[str, Any],
        *,
        key: str | bytes | None,
        headers: Headers | None = None,
    ) -> Any:
        future = await self.send(topic, message, key=key, headers=headers)
        return await future


@dataclass(frozen=True)
class Failure:
    """Why a message or work item failed, as a value; becomes a ``DeadLetter`` message."""

    reason: str
    error: str
    details: Mapping[str, Any] | None = None
    attempts: int = 1

    def dead_letter(
        self,
        *,
        service: str,
        record: ConsumerRecord | None = None,
        original: bytes | None = None,
        key: bytes | None = None,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> DeadLetter:
        """The DLQ message; coordinates come from ``record`` or, without one, the arguments."""
        if record is not None:
            original, key = record.value, record.key
            topic, partition, offset = record.topic, record.partition, record.offset
        raw, raw_key = original, key
        details = dict(self.details or {})
        if raw is not None and len(raw) > MAX_DEAD_LETTER_ORIGINAL_BYTES:
            details.update(original_bytes=len(raw), original_truncated=True)
            raw = raw[:MAX_DEAD_LETTER_ORIGINAL_BYTES]
        return DeadLetter(
            reason=self.reason,
            error=self.error,
            service=service,
            failed_at=utc_now_iso(),
            topic=topic,
            partition=partition,
            offset=offset,
            key_b64=base64.b64encode(raw_key).decode() if raw_key is not None else None,
            original_b64=base64.b64encode(raw).decode() if raw is not None else None,
            attempts=self.attempts,
            **({"details": details} if details else {}),
        )


def decode_value(raw: bytes | None, schema_id: str) -> dict[str, Any] | Failure:
    """Parse and validate a message value, or say why it cannot be used."""
    if raw is None:
        return Failure("empty_message", "message has no value (tombstone or empty)")
    try:
        message = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return Failure("invalid_json", f"not JSON: {exc}")
    if not isinstance(message, dict):
        return Failure("schema_invalid", f"expected a JSON object, got {type(message).__name__}")
    try:
        schemas.validate(schema_id, message)
    except SchemaValidationError as exc:
        return Failure("schema_invalid", str(exc))
    return message


def decode_record(record: ConsumerRecord, schema_id: str) -> dict[str, Any] | Failure:
    return decode_value(record.value, schema_id)


def decode_message(raw: bytes | None, model: type[M]) -> M | Failure:
    """Parse and validate a message value into its model, or say why it cannot be used."""
    decoded = decode_value(raw, model.schema_name())
    if isinstance(decoded, Failure):
        return decoded
    return model.from_message(decoded)


class DeadLetterSender:
    """Routes failures to ``<topic>.dlq`` with the error and the original bytes."""

    def __init__(self, producer: ValidatingProducer, *, service: str) -> None:
        self.producer = producer
        self.service = service
        self.sent = 0

    async def send(
        self,
        source_topic: str,
        letter: Failure,
        *,
        record: ConsumerRecord | None = None,
        original: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        offset: int | None = None,
        headers: Headers | None = None,
    ) -> Any:
        """Send to the DLQ of ``source_topic``; returns the future of the acknowledgement.

        Pass the consumed ``record``, or (from Faust, which has no ConsumerRecord) the
        ``original`` bytes, ``key``, ``partition`` and ``offset``.
        """
        message = letter.dead_letter(
            service=self.service,
            record=record,
            original=original,
            key=key,
            topic=source_topic,
            partition=partition,
            offset=offset,
        )
        logger.warning(
            "dead letter on %s: %s (%s)",
            source_topic,
            letter.reason,
            letter.error,
            extra={"reason": letter.reason, "topic": source_topic},
        )
        out_key = record.key if record is not None else key
        self.sent += 1
        return await self.producer.send(
            TopicNames.dlq(source_topic),
            message,
            key=out_key,
            headers=propagate_headers(headers if headers is not None else _headers(record)),
        )


def _headers(record: ConsumerRecord | None) -> Headers:
    return list(record.headers or ()) if record is not None else []


async def end_offsets(
    consumer: AIOKafkaConsumer, tps: Sequence[TopicPartition]
) -> dict[TopicPartition, int]:
    """Each partition's end offset (one past its last record); leaves the consumer unassigned.

    Tansu understates the end in its ListOffsets answer: with memory storage it answers the
    last batch's base offset + 1, with S3 storage the first batch's end, however many records
    came after. The high watermark of a fetch is right on every broker, so one record is
    fetched from the reported end to read it.
    """
    # Offsets of assigned partitions are answered at once; others wait for a metadata refresh.
    consumer.assign(list(tps))
    consumer.pause(*tps)
    reported = await consumer.end_offsets(list(tps))
    begins = await consumer.beginning_offsets(list(tps))
    # One fetch from each partition's reported last offset, all partitions at once.
    probed = [tp for tp in tps if reported[tp] > begins[tp]]
    for tp in probed:
        consumer.resume(tp)
        consumer.seek(tp, reported[tp] - 1)
    waiting = set(probed)
    deadline = time.monotonic() + 5.0
    while waiting and time.monotonic() < deadline:
        batch = await consumer.getmany(*waiting, timeout_ms=100, max_records=1)
        waiting -= {tp for tp, records in batch.items() if records}
    ends: dict[TopicPartition, int] = {}
    for tp in tps:
        highwater = consumer.highwater(tp) if tp in probed else None
        ends[tp] = max(reported[tp], highwater or 0)
    consumer.assign([])
    return ends


async def probe_end_offsets(
    kafka: KafkaSettings, tps: Sequence[TopicPartition]
) -> dict[TopicPartition, int]:
    """``end_offsets`` read by a consumer of its own, for callers whose consumer is in a group.

    Faust asks this for the changelog partitions a worker was given, which are none for a
    second worker of an app: a consumer stopped right after ``start()`` raised
    ``CancelledError`` there, which ended Faust's table recovery task for good, so that worker
    never consumed its stream partitions (found by the fault suite's scale-up case)."""
    if not tps:
        return {}
    consumer = make_consumer(kafka, group_id=None, max_partition_fetch_bytes=64 * 1024)
    await start_consumer(consumer)
    try:
        return await end_offsets(consumer, tps)
    finally:
        await consumer.stop()


def require_broker(kafka: KafkaSettings, *, timeout: float = 3.0) -> None:
    """Raise ``BrokerUnreachableError`` unless a TCP connection opens to a bootstrap address.

    For the tools (tail, topics, replay, export): without a broker aiokafka raises
    ``KafkaConnectionError`` after logging its own error, and the client it could not start is
    reported as unclosed at exit. Checking first gives the user one line saying what to do.
    """
    reasons = []
    for server in kafka.bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        host = host.strip("[]")
        try:
            with socket.create_connection((host, int(port)), timeout=timeout):
                return
        except ValueError:
            reasons.append(f"{server.strip()!r} is not host:port")
        except OSError as exc:
            reasons.append(exc.strerror or type(exc).__name__)
    raise BrokerUnreachableError(kafka.bootstrap_servers, "; ".join(dict.fromkeys(reasons)))
