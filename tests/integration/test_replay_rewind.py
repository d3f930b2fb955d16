"""`wirewatch replay rewind` against the real embedded broker."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess

from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from services.common.kafka import make_consumer
from services.common.settings import KafkaSettings
from tests.integration.test_replay_copy import (
    STEP_MS,
    T0,
    WIREWATCH,
    env_for,
    produce_stream,
    read_topic,
)
from wirewatch_tools.replay.plan import format_instant


async def consume_in_group(
    kafka: KafkaSettings, topic: str, group: str, expected: int
) -> list[ConsumerRecord]:
    """Consume ``expected`` records as a member of ``group``, commit, and leave."""
    consumer = make_consumer(kafka, topic, group_id=group)
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        async with asyncio.timeout(60):
            while len(records) < expected:
                for part in (await consumer.getmany(timeout_ms=500)).values():
                    records.extend(part)
        await consumer.commit()
    finally:
        await consumer.stop()
    return records


async def committed(
    kafka: KafkaSettings, group: str, topic: str, partitions: int
) -> dict[int, int]:
    admin = AIOKafkaAdminClient(**kafka.client_options())
    await admin.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        found = await admin.list_consumer_group_offsets(group, partitions=tps)
        return {tp.partition: found[tp].offset for tp in tps}
    finally:
        await admin.close()


def rewind(kafka: KafkaSettings, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*WIREWATCH, "replay", "rewind", *args],
        env=env_for(kafka),
        capture_output=True,
        timeout=120,
        check=False,
    )


async def test_group_rewound_to_a_time_reconsumes_from_there(
    kafka_settings: KafkaSettings, unique_topic: str
) -> None:
    await produce_stream(kafka_settings, unique_topic, 60)
    group = f"g-{unique_topic}"
    first_pass = await consume_in_group(kafka_settings, unique_topic, group, 60)
    assert len(first_pass) == 60
    source = await read_topic(kafka_settings, unique_topic)
    assert await committed(kafka_settings, group, unique_topic, 3) == {
        p: len(records) for p, records in source.items()
    }

    moment = T0 + 42 * STEP_MS
    result = await asyncio.to_thread(
        rewind, kafka_settings, "--group", group, "--topic", unique_topic,
        "--to-datetime", format_instant(moment),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode() + result.stdout.decode()

    expected_start = {
        p: next((r.offset for r in records if r.timestamp >= moment), len(records))
        for p, records in source.items()
    }
    assert await committed(kafka_settings, group, unique_topic, 3) == expected_start
    printed = result.stdout.decode()
    for p, records in source.items():
        assert f"{len(records)} {expected_start[p]}" in " ".join(printed.split())

    again = await consume_in_group(kafka_settings, unique_topic, group, 60 - 42)
    assert sorted(r.timestamp for r in again) == [T0 + n * STEP_MS for n in range(42, 60)]


async def test_rewind_refuses_while_a_consumer_of_the_group_is_alive(
    kafka_settings: KafkaSettings, unique_topic: str
) -> None:
    await produce_stream(kafka_settings, unique_topic, 30)
    group = f"g-{unique_topic}"
    await consume_in_group(kafka_settings, unique_topic, group, 30)
    before = await committed(kafka_settings, group, unique_topic, 3)

    live = make_consumer(kafka_settings, unique_topic, group_id=group)
    await live.start()

    async def keep_polling() -> None:
        while True:
            await live.getmany(timeout_ms=200)

    poller = asyncio.create_task(keep_polling())
    try:
        async with asyncio.timeout(30):
            while not live.assignment():
                await asyncio.sleep(0.1)
        result = await asyncio.to_thread(
            rewind, kafka_settings, "--group", group, "--topic", unique_topic, "--to-earliest"
        )
    finally:
        poller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poller
        await live.stop()

    assert result.returncode == 3, result.stdout.decode() + result.stderr.decode()
    assert "refused" in result.stderr.decode() and "--force" in result.stderr.decode()
    assert await committed(kafka_settings, group, unique_topic, 3) == before


async def test_forced_rewind_of_a_live_group_moves_what_it_can_and_reports_the_rest(
    kafka_settings: KafkaSettings, unique_topic: str
) -> None:
    await produce_stream(kafka_settings, unique_topic, 30)
    group = f"g-{unique_topic}"
    await consume_in_group(kafka_settings, unique_topic, group, 30)
    before = await committed(kafka_settings, group, unique_topic, 3)

    live = make_consumer(kafka_settings, unique_topic, group_id=group)
    await live.start()

    async def keep_polling() -> None:
        while True:
            await live.getmany(timeout_ms=200)

    poller = asyncio.create_task(keep_polling())
    try:
        async with asyncio.timeout(30):
            while not live.assignment():
                await asyncio.sleep(0.1)
        result = await asyncio.to_thread(
            rewind,
            kafka_settings,
            "--group",
            group,
            "--topic",
            unique_topic,
            "--to-earliest",
            "--force",
        )
    finally:
        poller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poller
        await live.stop()

    after = await committed(kafka_settings, group, unique_topic, 3)
    moved = {p for p in after if after[p] == 0}
    kept = {p for p in after if after[p] == before[p]}
    output = result.stdout.decode()
    # Two members share three partitions: this tool could commit only the ones it was given.
    assert moved and kept and moved | kept == {0, 1, 2}
    assert result.returncode == 1, output + result.stderr.decode()
    assert output.count("NOT REWOUND") == len(kept)
