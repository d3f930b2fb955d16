"""Consumers wait the configured time for data, not Faust's fixed 1.5 s (Tansu answers a waiting
fetch on a topic of several partitions only when that wait runs out: it is the latency of a hop),
and offsets are committed only after the table writes before them reached the Kafka client."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError
from faust.types import TP

from services.common import faust_app
from services.common.faust_app import make_faust_app
from services.common.kafka import make_consumer
from services.common.settings import KafkaSettings

UNREACHABLE = "127.0.0.1:1"


def consumer_thread(app: faust.App) -> Any:
    """The app's consumer thread: private Faust API that these tests call and patch."""
    consumer: Any = app.consumer
    return consumer._thread


async def test_faust_worker_consumer_waits_the_configured_fetch_time() -> None:
    kafka = KafkaSettings(bootstrap_servers=UNREACHABLE, fetch_max_wait_ms=123)
    app = make_faust_app("it-fetch-wait", kafka)
    consumer = consumer_thread(app)._create_worker_consumer(app.transport)
    try:
        assert consumer._fetch_max_wait_ms == 123
    finally:
        await consumer.stop()


async def test_plain_consumer_waits_the_configured_fetch_time() -> None:
    kafka = KafkaSettings(bootstrap_servers=UNREACHABLE, fetch_max_wait_ms=77)
    consumer = make_consumer(kafka, "some-topic", group_id=None)
    try:
        assert consumer._fetch_max_wait_ms == 77
    finally:
        await consumer.stop()


def test_fetch_wait_defaults_to_a_tenth_of_a_second() -> None:
    assert KafkaSettings().fetch_max_wait_ms == 100


class _SlowChannel:
    """Takes a while to hand a message to the Kafka client, like a producer awaiting metadata."""

    def __init__(self) -> None:
        self.published: list[object] = []

    async def publish_message(self, fut: object, wait: bool = False) -> None:
        await asyncio.sleep(0.3)
        self.published.append(fut)


async def test_a_flush_before_an_offset_commit_waits_for_every_table_write() -> None:
    """Faust's own flush returned while a write was still on its way to the Kafka client (and
    after 0.1 s without progress), so the commit after it could get ahead of the table."""
    app = make_faust_app("it-drain", KafkaSettings(bootstrap_servers=UNREACHABLE))
    buffer = app.producer.buffer
    channel = _SlowChannel()
    # Stand-ins for Faust's FutureMessage: only .message.channel is used.
    writes: list[Any] = [
        SimpleNamespace(message=SimpleNamespace(channel=channel)) for _ in range(3)
    ]
    await buffer.start()
    try:
        for write in writes:
            buffer.put(write)
        await buffer.flush()
        assert channel.published == writes
    finally:
        await buffer.stop()


async def test_table_recovery_waits_for_the_broker_instead_of_crashing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A rebalance while the broker is down asks for end offsets too; the worker must wait."""
    calls: list[list[TopicPartition]] = []

    async def probe(kafka: KafkaSettings, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        calls.append(list(tps))
        if len(calls) < 3:
            raise KafkaConnectionError("Unable to bootstrap")
        return {tp: 7 for tp in tps}

    monkeypatch.setattr(faust_app, "probe_end_offsets", probe)
    monkeypatch.setattr(faust_app, "END_OFFSETS_RETRY_SECONDS", 0.01)
    app = make_faust_app("it-recovery-wait", KafkaSettings(bootstrap_servers=UNREACHABLE))
    ends = await consumer_thread(app)._highwaters([TP("changelog", 0), TP("changelog", 1)])
    assert ends == {TP("changelog", 0): 7, TP("changelog", 1): 7}
    assert len(calls) == 3


class _FakeAiokafkaConsumer:
    """What a seek after a rebalance asks of aiokafka: committed offsets, and where it moved."""

    def __init__(self, committed: dict[TopicPartition, int | None]) -> None:
        self.committed = committed
        self.to_beginning: list[TopicPartition] = []

    async def seek_to_committed(self) -> dict[TopicPartition, int | None]:
        return dict(self.committed)

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        self.to_beginning += partitions


async def test_a_seek_after_a_rebalance_rewinds_partitions_the_group_never_committed() -> None:
    """aiokafka leaves a partition without a committed offset where it is; what the consumer
    fetched there during table recovery was then never processed."""
    app = make_faust_app("it-seek", KafkaSettings(bootstrap_servers=UNREACHABLE))
    app.Table("window", partitions=1, default=None)
    changelog = next(iter(app.tables.changelog_topics))
    committed = TopicPartition("articles", 0)
    never = TopicPartition("articles", 1)
    at_zero = TopicPartition("window", 0)
    fake = _FakeAiokafkaConsumer(
        {committed: 12, never: None, at_zero: 0, TopicPartition(changelog, 0): None}
    )
    thread = consumer_thread(app)
    thread._ensure_consumer = lambda: fake
    offsets = await thread._seek_to_committed_or_start()
    assert sorted(fake.to_beginning) == [never, at_zero]  # not the table's changelog
    assert offsets[committed] == 12 and offsets[never] is None


async def test_a_fetch_reads_a_copy_of_the_active_partitions_and_none_when_there_are_none() -> None:
    """aiokafka reads an empty set of partitions as "all of them"; Faust's set is live and
    table recovery empties it while a fetch waits."""
    app = make_faust_app("it-getmany", KafkaSettings(bootstrap_servers=UNREACHABLE))
    thread = consumer_thread(app)
    asked: list[set[TP]] = []

    async def fetch(
        method: object, consumer: object, partitions: set[TP], **_: object
    ) -> dict[TP, Any]:
        asked.append(partitions)
        return {}

    thread._ensure_consumer = lambda: SimpleNamespace(_max_poll_records=None)
    thread.call_thread = fetch
    live = {TP("articles", 0), TP("changelog", 0)}
    await thread.getmany(live, 0.1)
    live.clear()  # what pausing the last partition does to Faust's set
    assert asked == [{TP("articles", 0), TP("changelog", 0)}]
    assert await thread.getmany(live, 0.1) == {}
    assert len(asked) == 1, "an empty set must not reach aiokafka"
