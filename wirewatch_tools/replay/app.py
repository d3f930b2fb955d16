"""The Kafka side of replay: read a retained range of a topic, write it to another, rewind groups.

Input: any topic (``--topic``). Output: the ``--into`` topic, and progress checkpoints in the
compacted ``wirewatch.replay.checkpoints`` topic (key: job id). Decisions (ranges, time
look-ups, resume positions) are made by ``plan.py``; this module only moves bytes.

Tansu has no transactions, so a copy is made resumable without them: each copied record carries
its job and source coordinates in headers, a checkpoint notes the target's end offsets after
every acknowledged batch, and a resumed job reads the target from there to skip what it had
already written.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pydantic_settings import SettingsConfigDict

from services.common.kafka import end_offsets, make_producer
from services.common.ranges import (
    CopyPlan,
    CopyRequest,
    ReplayError,
    build_plan,
    locate_offsets,
    start_consumer,
    topic_partitions,
)
from services.common.settings import KafkaSettings, ServiceSettings
from services.common.topics import TopicSpec, ensure_topics
from wirewatch_tools.replay.plan import (
    Checkpoint,
    GroupActiveError,
    OffsetChange,
    advance_past_copied,
    copied_from,
    latest_checkpoints,
    provenance_headers,
    start_checkpoint,
)
from wirewatch_tools.replay.progress import Progress

logger = logging.getLogger(__name__)


class ReplaySettings(ServiceSettings):
    """``WIREWATCH_REPLAY_*``: where checkpoints live and how often they are written."""

    model_config = SettingsConfigDict(env_prefix="WIREWATCH_REPLAY_", frozen=True, extra="ignore")

    checkpoint_topic: str = "wirewatch.replay.checkpoints"
    checkpoint_every: int = 2000
    checkpoint_seconds: float = 2.0
    # A partition that yields nothing for this long before reaching its end offset has lost
    # the rest of its range (retention or compaction); the copy stops with an error.
    idle_timeout_seconds: float = 30.0


def checkpoint_topic_spec(name: str) -> TopicSpec:
    """One partition, compacted: only the latest checkpoint of each job matters."""
    return TopicSpec(name, 1, {"cleanup.policy": "compact"})


@dataclass(frozen=True)
class CopyOutcome:
    job: str
    plan: CopyPlan
    copied: int
    skipped: int
    already_copied: int
    seconds: float
    finished: bool


async def load_checkpoint(kafka: KafkaSettings, topic: str, job: str) -> Checkpoint | None:
    """The job's latest checkpoint, read from the whole (small, compacted) checkpoint topic."""
    consumer = await start_consumer(kafka, group_id=None)
    try:
        tps = [TopicPartition(topic, p) for p in await topic_partitions(consumer, topic)]
        if not tps:
            return None
        ends = await end_offsets(consumer, tps)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        values: list[tuple[bytes | None, bytes | None]] = []
        remaining = {tp for tp in tps if ends[tp] > 0}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=500)
            for tp, records in batch.items():
                values.extend((r.key, r.value) for r in records if r.offset < ends[tp])
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        raw = latest_checkpoints(values).get(job)
        return Checkpoint.from_json(raw) if raw is not None else None
    finally:
        await consumer.stop()


async def _copied_after(
    kafka: KafkaSettings, target: str, job: str, offsets: Mapping[int, int]
) -> list[tuple[int, int]]:
    """(source partition, offset) of every record ``job`` wrote at or after ``offsets``."""
    consumer = await start_consumer(kafka, group_id=None)
    try:
        tps = [TopicPartition(target, p) for p in await topic_partitions(consumer, target)]
        ends = await end_offsets(consumer, tps)
        pending = [tp for tp in tps if ends[tp] > offsets.get(tp.partition, 0)]
        if not pending:
            return []
        consumer.assign(pending)
        for tp in pending:
            consumer.seek(tp, offsets.get(tp.partition, 0))
        found: list[tuple[int, int]] = []
        remaining = set(pending)
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=500)
            for tp, records in batch.items():
                for record in records:
                    if record.offset < ends[tp]:
                        source = copied_from(record.headers, job)
                        if source is not None:
                            found.append(source)
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        return found
    finally:
        await consumer.stop()


async def _ensure_target(kafka: KafkaSettings, target: str, *, like: str) -> int:
    """Create the target with the source's partition count when missing; its partition count."""
    consumer = await start_consumer(kafka, group_id=None)
    try:
        existing = await topic_partitions(consumer, target)
        source = await topic_partitions(consumer, like)
    finally:
        await consumer.stop()
    if existing:
        return len(existing)
    count = max(1, len(source))
    await ensure_topics(kafka, [TopicSpec(target, count)])
    return count


async def _target_ends(consumer: AIOKafkaConsumer, target: str, count: int) -> dict[int, int]:
    """The target's end offsets as the broker reports them, without a fetch.

    Tansu may report less than the true end (see ``end_offsets``); a checkpoint only needs a
    lower bound, because the resume scan starts there and skips what is already counted.
    """
    ends = await consumer.end_offsets([TopicPartition(target, p) for p in range(count)])
    return {tp.partition: offset for tp, offset in ends.items()}


async def prepare_copy(
    kafka: KafkaSettings, settings: ReplaySettings, request: CopyRequest, job: str, *, restart: bool
) -> tuple[CopyPlan, Checkpoint | None]:
    """The plan to follow and, when this job ran before, its checkpoint (``restart`` ignores it)."""
    await ensure_topics(kafka, [checkpoint_topic_spec(settings.checkpoint_topic)])
    checkpoint = None if restart else await load_checkpoint(kafka, settings.checkpoint_topic, job)
    if checkpoint is not None:
        return checkpoint.plan, checkpoint
    return await build_plan(kafka, request), None


async def copy_range(
    kafka: KafkaSettings,
    settings: ReplaySettings,
    plan: CopyPlan,
    job: str,
    *,
    checkpoint: Checkpoint | None,
    stop: asyncio.Event,
    progress: Callable[[int], Progress],
    max_rate: float | None = None,
) -> CopyOutcome:
    """Copy the plan's ranges, resuming after ``checkpoint`` when given, until done or ``stop``."""
    started = time.monotonic()
    partitions = await _ensure_target(kafka, plan.target, like=plan.source)
    consumer = await start_consumer(kafka, group_id=None)
    # A consumer that holds the target's partitions paused, only to read their end offsets.
    watcher = await start_consumer(kafka, group_id=None)
    target_tps = [TopicPartition(plan.target, p) for p in range(partitions)]
    watcher.assign(target_tps)
    watcher.pause(*target_tps)
    producer = make_producer(kafka)
    await producer.start()
    try:
        if checkpoint is None:
            checkpoint = start_checkpoint(
                job, plan, await _target_ends(watcher, plan.target, partitions)
            )
            await _write_checkpoint(producer, settings, checkpoint)
            already = 0
        else:
            found = await _copied_after(kafka, plan.target, job, checkpoint.target_offsets)
            checkpoint = advance_past_copied(checkpoint, found)
            already = plan.total - checkpoint.remaining()
            logger.info("resuming job %s: %d of %d already copied", job, already, plan.total)
        copier = _Copier(consumer, watcher, producer, settings, checkpoint, partitions, max_rate)
        bar = progress(checkpoint.remaining())
        try:
            finished = await copier.run(stop, bar)
        finally:
            bar.close()
        return CopyOutcome(
            job=job,
            plan=plan,
            copied=copier.copied,
            skipped=copier.skipped,
            already_copied=already,
            seconds=time.monotonic() - started,
            finished=finished,
        )
    finally:
        await producer.stop()
        await watcher.stop()
        await consumer.stop()


async def _write_checkpoint(
    producer: AIOKafkaProducer, settings: ReplaySettings, checkpoint: Checkpoint
) -> None:
    await producer.send_and_wait(
        settings.checkpoint_topic, checkpoint.to_json(), key=checkpoint.job.encode()
    )


class _Copier:
    """The copy loop: read, re-send with provenance, checkpoint after each acknowledged stretch."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        watcher: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        settings: ReplaySettings,
        checkpoint: Checkpoint,
        target_partitions: int,
        max_rate: float | None,
    ) -> None:
        self.consumer = consumer
        self.watcher = watcher
        self.producer = producer
        self.settings = settings
        self.checkpoint = checkpoint
        self.plan = checkpoint.plan
        self.target_partitions = target_partitions
        self.max_rate = max_rate
        self.positions = dict(checkpoint.next_offsets)
        self.ends = {r.partition: r.end for r in self.plan.ranges}
        self.pending: list[asyncio.Future[object]] = []
        self.copied = 0
        self.skipped = 0
        self._counted_copied = 0
        self._counted_skipped = 0

    async def run(self, stop: asyncio.Event, bar: Progress) -> bool:
        source = self.plan.source
        active = {
            TopicPartition(source, p)
            for p, end in self.ends.items()
            if self.positions.get(p, end) < end
        }
        if active:
            self.consumer.assign(sorted(active))
            for tp in active:
                self.consumer.seek(tp, self.positions[tp.partition])
        since_checkpoint = 0
        last_checkpoint = last_record = started = time.monotonic()
        while active and not stop.is_set():
            batch = await self.consumer.getmany(*active, timeout_ms=300, max_records=500)
            moved = 0
            for tp, records in batch.items():
                moved += await self._copy_records(tp, records)
            for tp in list(active):
                if self.positions[tp.partition] >= self.ends[tp.partition]:
                    active.discard(tp)
                elif await self.consumer.position(tp) >= self.ends[tp.partition]:
                    # The rest of the range is a gap (compacted away): nothing left to copy.
                    self.positions[tp.partition] = self.ends[tp.partition]
                    active.discard(tp)
            now = time.monotonic()
            if moved:
                last_record = now
            elif active and now - last_record > self.settings.idle_timeout_seconds:
                await self._checkpoint(done=False)
                missing = {
                    tp.partition: (self.positions[tp.partition], self.ends[tp.partition])
                    for tp in active
                }
                raise ReplayError(f"no records arrive for partitions (position, end) {missing}")
            bar.advance(moved)
            since_checkpoint += moved
            if since_checkpoint >= self.settings.checkpoint_every or (
                since_checkpoint and now - last_checkpoint >= self.settings.checkpoint_seconds
            ):
                await self._checkpoint(done=False)
                since_checkpoint, last_checkpoint = 0, now
            if self.max_rate:
                ahead = (self.copied + self.skipped) / self.max_rate - (now - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
        finished = not active
        await self._checkpoint(done=finished)
        return finished

    async def _copy_records(self, tp: TopicPartition, records: Sequence[ConsumerRecord]) -> int:
        partition = tp.partition
        end = self.ends[partition]
        moved = 0
        for record in records:
            if record.offset >= end:
                break
            if self.plan.in_time_range(record.timestamp):
                headers = provenance_headers(
                    record.headers,
                    job=self.checkpoint.job,
                    partition=partition,
                    offset=record.offset,
                )
                future = await self.producer.send(
                    self.plan.target,
                    record.value,
                    key=record.key,
                    headers=headers,
                    timestamp_ms=record.timestamp,
                    # Keyed records go where the key hashes, as every pipeline producer sends
                    # them; keyless ones keep their source partition (modulo the target's).
                    partition=None
                    if record.key is not None
                    else partition % self.target_partitions,
                )
                self.pending.append(future)
                self.copied += 1
            else:
                self.skipped += 1
            self.positions[partition] = record.offset + 1
            moved += 1
        return moved

    async def _checkpoint(self, *, done: bool) -> None:
        """Wait for every sent record's acknowledgement, then note positions and target ends."""
        if self.pending:
            await asyncio.gather(*self.pending)
            self.pending.clear()
        ends = await _target_ends(self.watcher, self.plan.target, self.target_partitions)
        self.checkpoint = replace(
            self.checkpoint,
            next_offsets=dict(self.positions),
            target_offsets=ends,
            done=done,
            copied=self.checkpoint.copied + self.copied - self._counted_copied,
            skipped=self.checkpoint.skipped + self.skipped - self._counted_skipped,
        )
        self._counted_copied, self._counted_skipped = self.copied, self.skipped
        await _write_checkpoint(self.producer, self.settings, self.checkpoint)


@dataclass(frozen=True)
class GroupMember:
    member_id: str
    client_id: str
    host: str


async def describe_members(admin: AIOKafkaAdminClient, group: str) -> tuple[str, list[GroupMember]]:
    """The group's state and listed members, as the coordinator reports them."""
    [response] = await admin.describe_consumer_groups([group])
    for description in response.groups:
        group_id, state, members = description[1], description[2], description[5]
        if group_id == group:
            return str(state), [GroupMember(m[0], m[1], m[2]) for m in members]
    return "Dead", []


async def committed_offsets(
    admin: AIOKafkaAdminClient, group: str, tps: Sequence[TopicPartition]
) -> dict[TopicPartition, int | None]:
    found = await admin.list_consumer_group_offsets(group, partitions=list(tps))
    result: dict[TopicPartition, int | None] = {}
    for tp in tps:
        meta = found.get(tp)
        result[tp] = meta.offset if meta is not None and meta.offset >= 0 else None
    return result


async def rewind_targets(
    kafka: KafkaSettings, topics: Sequence[str], *, to_ms: int | None
) -> dict[TopicPartition, int]:
    """Where the group should resume: the first offset at ``to_ms``, or each partition's start."""
    consumer = await start_consumer(kafka, group_id=None)
    try:
        per_topic = {topic: await topic_partitions(consumer, topic) for topic in topics}
        missing = [t for t, parts in per_topic.items() if not parts]
        if missing:
            raise ReplayError(f"no such topic(s): {missing}")
        tps = [TopicPartition(t, p) for t, parts in per_topic.items() for p in parts]
        begins = await consumer.beginning_offsets(tps)
    finally:
        await consumer.stop()
    if to_ms is None:
        return dict(begins)
    targets: dict[TopicPartition, int] = {}
    for topic, parts in per_topic.items():
        for partition, offset in (await locate_offsets(kafka, topic, to_ms, parts)).items():
            targets[TopicPartition(topic, partition)] = offset
    return targets


async def rewind_group(
    kafka: KafkaSettings,
    group: str,
    topics: Sequence[str],
    *,
    to_ms: int | None,
    force: bool,
    dry_run: bool,
    join_timeout: float = 60.0,
) -> list[OffsetChange]:
    """Commit the group's offsets back to ``to_ms`` (or the earliest), after checking it is idle.

    The check joins the group: members that are alive rejoin and share the partitions, members
    that are gone are dropped by the coordinator. Describing the group alone is not enough on
    Tansu, which keeps a group's first member listed after it has stopped.
    """
    targets = await rewind_targets(kafka, topics, to_ms=to_ms)
    tps = sorted(targets)
    admin = AIOKafkaAdminClient(**kafka.client_options())
    await admin.start()
    try:
        before = await committed_offsets(admin, group, tps)
        if dry_run:
            return [
                OffsetChange(tp.topic, tp.partition, before[tp], targets[tp], targets[tp])
                for tp in tps
            ]
        _state, listed = await describe_members(admin, group)
        if listed:
            logger.info("group %s lists %d member(s); checking which are alive", group, len(listed))
        consumer = await start_consumer(kafka, *sorted(set(topics)), group_id=group)
        try:
            deadline = time.monotonic() + join_timeout
            while not consumer.assignment():
                if time.monotonic() > deadline:
                    raise ReplayError(f"could not join group {group} within {join_timeout:.0f}s")
                await asyncio.sleep(0.1)
            _state, members = await describe_members(admin, group)
            held = set(consumer.assignment())
            others = len(members) > 1 or held != set(tps)
            if others and not force:
                listed_members = ", ".join(
                    f"{m.client_id or m.member_id}@{m.host}" for m in members
                )
                raise GroupActiveError(
                    f"group {group} has live member(s) besides this tool ({listed_members}); "
                    "stop its consumers first, or pass --force"
                )
            commit = {tp: targets[tp] for tp in tps if tp in held}
            await consumer.commit(commit)
        finally:
            await consumer.stop()
        after = await committed_offsets(admin, group, tps)
    finally:
        await admin.close()
    return [OffsetChange(tp.topic, tp.partition, before[tp], after[tp], targets[tp]) for tp in tps]
