"""`wirewatch replay copy` against the real embedded broker: exact ranges, resume, dry run."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict

from aiokafka import ConsumerRecord, TopicPartition

from services.common import ranges
from services.common.kafka import make_consumer, make_producer
from services.common.settings import KafkaSettings
from services.common.topics import TopicSpec, ensure_topics
from wirewatch_tools.replay import app
from wirewatch_tools.replay.plan import JOB_HEADER, REPLAY_HEADERS, SOURCE_HEADER, format_instant
from wirewatch_tools.replay.progress import Progress

WIREWATCH = [sys.executable, "-m", "wirewatch_tools.cli"]
T0 = 1_742_200_000_000  # 2025-03-17T08:26:40Z: the stream's first timestamp
STEP_MS = 1000


async def produce_stream(kafka: KafkaSettings, topic: str, count: int, partitions: int = 3) -> None:
    """``count`` keyed messages one second apart, each with its own header, in one burst."""
    await ensure_topics(kafka, [TopicSpec(topic, partitions)])
    producer = make_producer(kafka)
    await producer.start()
    try:
        futures = [
            await producer.send(
                topic,
                f'{{"n": {n}}}'.encode(),
                key=f"key-{n}".encode(),
                headers=[("wirewatch-trace-id", f"trace-{n}".encode())],
                timestamp_ms=T0 + n * STEP_MS,
            )
            for n in range(count)
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def read_topic(kafka: KafkaSettings, topic: str) -> dict[int, list[ConsumerRecord]]:
    """Every record of ``topic``, per partition, in offset order: read until a second of silence.

    Not bounded by the reported end offsets, which Tansu understates
    (see ``services.common.kafka.end_offsets``).
    """
    consumer = make_consumer(kafka, group_id=None)
    await consumer.start()
    try:
        await consumer.topics()
        partitions = sorted(consumer.partitions_for_topic(topic) or ())
        tps = [TopicPartition(topic, p) for p in partitions]
        found: dict[int, list[ConsumerRecord]] = {p: [] for p in partitions}
        if not tps:
            return found
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while batch := await consumer.getmany(timeout_ms=1000):
            for tp, records in batch.items():
                found[tp.partition].extend(records)
        return found
    finally:
        await consumer.stop()


def essence(
    record: ConsumerRecord,
) -> tuple[bytes | None, bytes | None, tuple[tuple[str, bytes], ...], int]:
    """What a copy must preserve: key, value, original headers, timestamp."""
    headers = tuple((k, v) for k, v in record.headers if k not in REPLAY_HEADERS)
    return (record.key, record.value, headers, record.timestamp)


def env_for(kafka: KafkaSettings, **extra: str) -> dict[str, str]:
    return dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=kafka.bootstrap_servers, **extra)


def quiet_progress(total: int) -> Progress:
    return Progress(total, label="test", interactive=False, every_seconds=3600)


async def test_time_range_copy_yields_exactly_the_messages_in_range_in_partition_order(
    kafka_settings: KafkaSettings, unique_topic: str
) -> None:
    await produce_stream(kafka_settings, unique_topic, 90)
    since, until = T0 + 17 * STEP_MS, T0 + 61 * STEP_MS
    source = await read_topic(kafka_settings, unique_topic)
    expected = {
        p: [essence(r) for r in records if since <= r.timestamp < until]
        for p, records in source.items()
    }
    assert sum(map(len, expected.values())) == 44

    target = f"{unique_topic}-copy"
    request = ranges.CopyRequest(unique_topic, target, since_ms=since, until_ms=until)
    settings = app.ReplaySettings(kafka=kafka_settings)
    plan = await ranges.build_plan(kafka_settings, request)
    outcome = await app.copy_range(
        kafka_settings,
        settings,
        plan,
        "job-time-range",
        checkpoint=None,
        stop=asyncio.Event(),
        progress=quiet_progress,
    )

    assert outcome.finished and outcome.copied == 44 and outcome.skipped == 0
    copied = await read_topic(kafka_settings, target)
    assert {p: [essence(r) for r in records] for p, records in copied.items()} == expected
    for p, records in copied.items():
        assert all(dict(r.headers)[JOB_HEADER] == b"job-time-range" for r in records)
        sources = [dict(r.headers)[SOURCE_HEADER].decode() for r in records]
        assert sources == [f"{p}:{r.offset}" for r in source[p] if since <= r.timestamp < until]


async def test_offset_range_copy_takes_only_the_named_partitions_and_offsets(
    kafka_settings: KafkaSettings, unique_topic: str
) -> None:
    await produce_stream(kafka_settings, unique_topic, 60)
    source = await read_topic(kafka_settings, unique_topic)
    target = f"{unique_topic}-copy"
    env = env_for(kafka_settings)
    result = await asyncio.to_thread(
        subprocess.run,
        [*WIREWATCH, "replay", "copy", "--topic", unique_topic, "--into", target]
        + ["--from-offsets", "0:3,2:5", "--to-offsets", "0:9,2:7"],
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    copied = await read_topic(kafka_settings, target)
    assert sorted(copied) == [0, 1, 2], "a missing target is created like the source"
    got = sorted(essence(r) for records in copied.values() for r in records)
    want = sorted(essence(r) for r in source[0][3:9] + source[2][5:7])
    assert got == want


async def test_dry_run_prints_per_partition_offsets_and_counts_and_copies_nothing(
    kafka_settings: KafkaSettings, unique_topic: str
) -> None:
    await produce_stream(kafka_settings, unique_topic, 30, partitions=2)
    source = await read_topic(kafka_settings, unique_topic)
    since, until = T0 + 10 * STEP_MS, T0 + 20 * STEP_MS
    target = f"{unique_topic}-copy"
    result = await asyncio.to_thread(
        subprocess.run,
        [*WIREWATCH, "replay", "copy", "--topic", unique_topic, "--into", target, "--dry-run"]
        + ["--since", format_instant(since), "--until", format_instant(until)],
        env=env_for(kafka_settings),
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    rows = {}
    for line in result.stdout.decode().splitlines():
        fields = line.split()
        if len(fields) == 4 and fields[0].isdigit():
            rows[int(fields[0])] = tuple(int(f) for f in fields[1:])
    for p, records in source.items():
        inside = [r.offset for r in records if since <= r.timestamp < until]
        assert rows[p] == (inside[0], inside[-1] + 1, len(inside))
    assert "dry run: nothing copied" in result.stdout.decode()
    assert sum(map(len, (await read_topic(kafka_settings, target)).values())) == 0


async def test_copy_killed_midway_and_rerun_completes_without_duplicates(
    kafka_settings: KafkaSettings, unique_topic: str
) -> None:
    total = 2400
    await produce_stream(kafka_settings, unique_topic, total)
    target = f"{unique_topic}-copy"
    command = [*WIREWATCH, "replay", "copy", "--topic", unique_topic, "--into", target]
    env = env_for(
        kafka_settings,
        WIREWATCH_REPLAY_CHECKPOINT_EVERY="250",
        WIREWATCH_REPLAY_CHECKPOINT_SECONDS="60",
    )
    process = subprocess.Popen(
        # Slow enough that a loaded machine still catches it midway (24 s for the whole copy).
        [*command, "--max-rate", "100"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        copied_so_far = 0
        while copied_so_far < 700 and time.monotonic() < deadline:
            await asyncio.sleep(0.3)
            copied_so_far = sum(map(len, (await read_topic(kafka_settings, target)).values()))
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
    interrupted_at = sum(map(len, (await read_topic(kafka_settings, target)).values()))
    assert 700 <= interrupted_at < total

    result = await asyncio.to_thread(
        subprocess.run, command, env=env, capture_output=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr.decode()
    copied = [r for records in (await read_topic(kafka_settings, target)).values() for r in records]
    sources = [dict(r.headers)[SOURCE_HEADER] for r in copied]
    assert len(sources) == len(set(sources)) == total
    source = await read_topic(kafka_settings, unique_topic)
    assert sorted(essence(r) for r in copied) == sorted(
        essence(r) for records in source.values() for r in records
    )
    assert f"{interrupted_at} copied before this run" in result.stdout.decode()

    again = await asyncio.to_thread(
        subprocess.run, command, env=env, capture_output=True, timeout=120, check=False
    )
    assert again.returncode == 0
    assert f"already finished ({total} copied)" in again.stdout.decode()
    assert sum(map(len, (await read_topic(kafka_settings, target)).values())) == total


async def test_copy_stopped_gracefully_resumes_from_its_checkpoint(
    kafka_settings: KafkaSettings, unique_topic: str
) -> None:
    total = 3000
    await produce_stream(kafka_settings, unique_topic, total)
    target = f"{unique_topic}-copy"
    settings = app.ReplaySettings(kafka=kafka_settings, checkpoint_every=50)
    request = ranges.CopyRequest(unique_topic, target)
    plan, checkpoint = await app.prepare_copy(
        kafka_settings, settings, request, "job-graceful", restart=False
    )
    assert checkpoint is None
    stop = asyncio.Event()

    class StopAfter(Progress):
        def advance(self, count: int) -> None:
            super().advance(count)
            if self.done >= 120:
                stop.set()

    first = await app.copy_range(
        kafka_settings,
        settings,
        plan,
        "job-graceful",
        checkpoint=None,
        stop=stop,
        progress=lambda total: StopAfter(total, label="t", interactive=False),
        max_rate=2000,
    )
    assert not first.finished and 120 <= first.copied < total
    plan, checkpoint = await app.prepare_copy(
        kafka_settings, settings, request, "job-graceful", restart=False
    )
    assert checkpoint is not None and checkpoint.remaining() == total - first.copied
    second = await app.copy_range(
        kafka_settings,
        settings,
        plan,
        "job-graceful",
        checkpoint=checkpoint,
        stop=asyncio.Event(),
        progress=quiet_progress,
    )
    assert second.finished and first.copied + second.copied == total
    per_source: defaultdict[bytes, int] = defaultdict(int)
    for records in (await read_topic(kafka_settings, target)).values():
        for r in records:
            per_source[dict(r.headers)[SOURCE_HEADER]] += 1
    assert len(per_source) == total and set(per_source.values()) == {1}
