"""The retained range of a topic a replay reads: offsets per partition, found by time.

Shared by the replay tools (copy, rewind) and the stages' own replays (the coder's recode),
so each reads exactly the records a time range or an offset range names. Tansu indexes
``offsets_for_times`` by when a batch arrived rather than by the records' own timestamps, so
the broker's answer is checked against the records and searched for when wrong.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from services.common.errors import WirewatchError
from services.common.kafka import end_offsets, make_consumer
from services.common.settings import KafkaSettings


class ReplayError(WirewatchError):
    """A replay request that cannot be carried out as asked (bad range, unknown topic, ...)."""


@dataclass(frozen=True)
class PartitionRange:
    """Offsets ``[start, end)`` of one source partition: the records a copy reads."""

    partition: int
    start: int
    end: int

    @property
    def count(self) -> int:
        return max(0, self.end - self.start)


@dataclass(frozen=True)
class CopyPlan:
    """A copy of a range of ``source`` into ``target``, fixed before the first record moves.

    ``since_ms``/``until_ms`` (when the range was given by time) also filter records whose
    timestamps are out of order, so nothing outside the time range is copied.
    """

    source: str
    target: str
    ranges: tuple[PartitionRange, ...]
    since_ms: int | None = None
    until_ms: int | None = None

    @property
    def total(self) -> int:
        return sum(r.count for r in self.ranges)

    def in_time_range(self, timestamp_ms: int) -> bool:
        if self.since_ms is not None and timestamp_ms < self.since_ms:
            return False
        return self.until_ms is None or timestamp_ms < self.until_ms


def plan_ranges(
    beginnings: Mapping[int, int],
    ends: Mapping[int, int],
    *,
    starts: Mapping[int, int],
    stops: Mapping[int, int] | None = None,
) -> tuple[PartitionRange, ...]:
    """Clamp the requested start/stop offsets to what the partitions retain.

    ``starts`` names the partitions to copy (a partition it leaves out is not copied); a
    partition missing from ``stops`` is copied up to its end offset as read now, so a copy of a
    live topic still ends.
    """
    unknown = sorted(set(starts) - set(ends))
    if unknown:
        raise ReplayError(f"no such partition(s): {unknown}; the topic has {sorted(ends)}")
    ranges = []
    for partition in sorted(starts):
        low, high = beginnings.get(partition, 0), ends[partition]
        start = min(max(starts[partition], low), high)
        stop = high if stops is None or partition not in stops else stops[partition]
        end = min(max(stop, start), high)
        ranges.append(PartitionRange(partition, start, end))
    return tuple(ranges)


@dataclass(frozen=True)
class RecordPosition:
    """Where a record sits and when it was stamped; all a time look-up needs to know."""

    offset: int
    timestamp_ms: int


# Reads the records at and after an offset (at least one when any exists; empty when none).
ReadFrom = Callable[[int], Awaitable[Sequence[RecordPosition]]]


async def first_offset_at_or_after(
    timestamp_ms: int,
    *,
    begin: int,
    end: int,
    read_from: ReadFrom,
    hint: int | None = None,
) -> int:
    """The first offset in ``[begin, end)`` whose record is stamped at or after ``timestamp_ms``.

    Returns ``end`` when there is none. The broker's ``offsets_for_times`` answer (``hint``) is
    checked against the records around it and used when it holds; otherwise the offset is found
    by binary search over record timestamps. The check is needed because Tansu indexes by the
    time a batch arrived, not by the records' own (preserved) timestamps.
    """
    if begin >= end:
        return end
    if hint is not None and begin <= hint <= end:
        records = await read_from(max(begin, hint - 1))
        before = [r for r in records if r.offset < hint]
        after = [r for r in records if hint <= r.offset < end]
        starts_ok = hint == begin or (bool(before) and before[-1].timestamp_ms < timestamp_ms)
        ends_ok = hint == end or (bool(after) and after[0].timestamp_ms >= timestamp_ms)
        if starts_ok and ends_ok:
            return hint
    low, high = begin, end
    while low < high:
        middle = (low + high) // 2
        records = [r for r in await read_from(middle) if middle <= r.offset < high]
        if not records or records[0].timestamp_ms >= timestamp_ms:
            high = middle
            continue
        later = [r for r in records if r.timestamp_ms >= timestamp_ms]
        if later:
            high = later[0].offset
            low = max(r.offset for r in records if r.offset < later[0].offset) + 1
        else:
            low = records[-1].offset + 1
    return low


@dataclass(frozen=True)
class CopyRequest:
    """A copy as the user asked for it; the same request maps to the same resumable job."""

    source: str
    target: str
    since_ms: int | None = None
    until_ms: int | None = None
    from_offsets: Mapping[int, int] | None = None
    to_offsets: Mapping[int, int] | None = None

    def describe(self) -> str:
        return (
            f"since={self.since_ms} until={self.until_ms} "
            f"from={sorted((self.from_offsets or {}).items())} "
            f"to={sorted((self.to_offsets or {}).items())}"
        )


async def start_consumer(kafka: KafkaSettings, *topics: str, **options: Any) -> AIOKafkaConsumer:
    """A started consumer that can be stopped at once.

    aiokafka's stop() re-raises the cancellation of a coordinator task that never got to run,
    so the loop is given one turn after start().
    """
    consumer = make_consumer(kafka, *topics, **options)
    await consumer.start()
    await asyncio.sleep(0)
    return consumer


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str) -> list[int]:
    """The topic's partitions as the consumer saw them when it started (none: no such topic).

    A consumer learns every topic's metadata when it starts, so a topic created since needs a
    new consumer.
    """
    return sorted(consumer.partitions_for_topic(topic) or ())


async def _read_from(
    consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int, *, wait_seconds: float = 5.0
) -> list[RecordPosition]:
    consumer.seek(tp, offset)
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        batch = await consumer.getmany(tp, timeout_ms=300, max_records=500)
        records = batch.get(tp, [])
        if records:
            return [RecordPosition(r.offset, r.timestamp) for r in records]
    return []


async def locate_offsets(
    kafka: KafkaSettings, topic: str, timestamp_ms: int, partitions: Sequence[int]
) -> dict[int, int]:
    """For each partition, the first offset whose record is stamped at or after ``timestamp_ms``.

    Partitions with no such record get their end offset.
    """
    consumer = await start_consumer(kafka, group_id=None, max_partition_fetch_bytes=256 * 1024)
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        ends = await end_offsets(consumer, tps)
        consumer.assign(tps)
        consumer.pause(*tps)
        begins = await consumer.beginning_offsets(tps)
        hints = await consumer.offsets_for_times({tp: timestamp_ms for tp in tps})
        found: dict[int, int] = {}
        for tp in tps:
            answer = hints.get(tp)
            # Tansu answers "none" as offset 0 with timestamp -1 instead of a null entry.
            hint = ends[tp] if answer is None or answer.timestamp < 0 else answer.offset
            consumer.assign([tp])

            async def read(offset: int, tp: TopicPartition = tp) -> list[RecordPosition]:
                return await _read_from(consumer, tp, offset)

            found[tp.partition] = await first_offset_at_or_after(
                timestamp_ms, begin=begins[tp], end=ends[tp], read_from=read, hint=hint
            )
        return found
    finally:
        await consumer.stop()


async def build_plan(kafka: KafkaSettings, request: CopyRequest) -> CopyPlan:
    """Turn the request into fixed offset ranges, read against the topic as it is now."""
    consumer = await start_consumer(kafka, group_id=None)
    try:
        partitions = await topic_partitions(consumer, request.source)
        if not partitions:
            raise ReplayError(f"no such topic: {request.source}")
        tps = [TopicPartition(request.source, p) for p in partitions]
        begins = {tp.partition: o for tp, o in (await consumer.beginning_offsets(tps)).items()}
        ends = {tp.partition: o for tp, o in (await end_offsets(consumer, tps)).items()}
    finally:
        await consumer.stop()
    if request.from_offsets is not None:
        starts = dict(request.from_offsets)
    elif request.since_ms is not None:
        starts = await locate_offsets(kafka, request.source, request.since_ms, partitions)
    else:
        starts = dict(begins)
    stops: dict[int, int] | None = None
    if request.to_offsets is not None:
        stops = dict(request.to_offsets)
    elif request.until_ms is not None:
        stops = await locate_offsets(kafka, request.source, request.until_ms, sorted(starts))
    ranges = plan_ranges(begins, ends, starts=starts, stops=stops)
    return CopyPlan(
        source=request.source,
        target=request.target,
        ranges=ranges,
        since_ms=request.since_ms,
        until_ms=request.until_ms,
    )
