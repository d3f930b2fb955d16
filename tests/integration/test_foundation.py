"""The foundation against the real embedded broker: round trips, DLQ, durable storage, CLI."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiokafka import ConsumerRecord, TopicPartition

from services.common import schemas
from services.common.errors import SchemaValidationError
from services.common.kafka import (
    SCHEMA_HEADER,
    DeadLetterSender,
    ValidatingProducer,
    decode_record,
    header_value,
    make_consumer,
    make_producer,
)
from services.common.settings import KafkaSettings, TopicNames
from services.common.topics import TopicSpec, ensure_topics
from tests.unit.test_schemas import load_example
from wirewatch_tools.broker import free_port, wait_for_kafka

WIREWATCH = [sys.executable, "-m", "wirewatch_tools.cli"]


async def consume_all(
    kafka: KafkaSettings, topic: str, expected: int, timeout: float = 20
) -> list[ConsumerRecord]:
    consumer = make_consumer(kafka, topic, group_id=None)
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        deadline = time.monotonic() + timeout
        while len(records) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for part in batch.values():
                records.extend(part)
    finally:
        await consumer.stop()
    return records


async def test_schema_valid_message_round_trips_through_the_broker(
    kafka_settings: KafkaSettings, unique_topic: str
) -> None:
    await ensure_topics(kafka_settings, [TopicSpec(unique_topic, 2)])
    entry = load_example(schemas.FEED_ENTRY)
    producer = make_producer(kafka_settings)
    await producer.start()
    try:
        sender = ValidatingProducer(producer, service="test")
        await sender.send_and_wait(unique_topic, entry, key=entry["url"])
    finally:
        await producer.stop()

    [record] = await consume_all(kafka_settings, unique_topic, 1)
    assert record.key == entry["url"].encode()
    assert header_value(record.headers, SCHEMA_HEADER) == b"feed_entry.v1"
    assert decode_record(record, schemas.FEED_ENTRY) == entry


async def test_producer_refuses_an_invalid_message_before_it_reaches_the_topic(
    kafka_settings: KafkaSettings, unique_topic: str
) -> None:
    producer = make_producer(kafka_settings)
    await producer.start()
    try:
        sender = ValidatingProducer(producer, service="test")
        broken = load_example(schemas.FEED_ENTRY) | {"first_seen": "not a time"}
        with pytest.raises(SchemaValidationError, match="first_seen"):
            await sender.send_and_wait(unique_topic, broken, key="k")
    finally:
        await producer.stop()


async def test_invalid_message_ends_in_the_dlq_with_reason_and_original_bytes(
    kafka_settings: KafkaSettings, unique_topic: str
) -> None:
    dlq = TopicNames.dlq(unique_topic)
    await ensure_topics(kafka_settings, [TopicSpec(unique_topic, 1), TopicSpec(dlq, 1)])
    poison = [b"\xff\xfenot json", json.dumps({"schema": "feed_entry.v1"}).encode()]
    producer = make_producer(kafka_settings)
    await producer.start()
    try:
        for value in poison:
            await producer.send_and_wait(unique_topic, value, key=b"poison")
        consumer = make_consumer(kafka_settings, unique_topic, group_id=f"g-{unique_topic}")
        await consumer.start()
        dead_letters = DeadLetterSender(
            ValidatingProducer(producer, service="test"), service="test"
        )
        handled = 0
        while handled < len(poison):
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for record in records:
                    outcome = decode_record(record, schemas.FEED_ENTRY)
                    assert not isinstance(outcome, dict)
                    await (await dead_letters.send(unique_topic, outcome, record=record))
                    handled += 1
        await consumer.commit()
        await consumer.stop()
    finally:
        await producer.stop()

    letters = [json.loads(r.value) for r in await consume_all(kafka_settings, dlq, 2)]
    assert [letter["reason"] for letter in letters] == ["invalid_json", "schema_invalid"]
    assert [base64.b64decode(letter["original_b64"]) for letter in letters] == poison
    assert {letter["topic"] for letter in letters} == {unique_topic}
    assert [letter["offset"] for letter in letters] == [0, 1]
    assert "entry_id" in letters[1]["error"]
    for letter in letters:
        schemas.validate(schemas.DEAD_LETTER, letter)


def _start_broker_cli(port: int, data_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [*WIREWATCH, "broker", "--storage", "s3", "--port", str(port), "--data-dir", str(data_dir)],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    wait_for_kafka(port, timeout=90, process=process)
    return process


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)


async def test_broker_with_s3_storage_keeps_a_topics_messages_across_a_restart(
    tmp_path: Path,
) -> None:
    port = free_port()
    kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{port}")
    log = tmp_path / "broker.log"
    process = _start_broker_cli(port, tmp_path / "data", log)
    try:
        await ensure_topics(kafka, [TopicSpec("durable", 1)])
        producer = make_producer(kafka)
        await producer.start()
        for number in range(5):
            await producer.send_and_wait("durable", f"message {number}".encode(), key=b"k")
        await producer.stop()
    finally:
        _stop(process)
    assert process.returncode == 0, log.read_text()

    process = _start_broker_cli(port, tmp_path / "data", log)
    try:
        records = await consume_all(kafka, "durable", 5, timeout=30)
    finally:
        _stop(process)
    assert [r.value for r in records] == [f"message {n}".encode() for n in range(5)]


async def test_tail_prints_what_was_produced(
    kafka_settings: KafkaSettings, unique_topic: str
) -> None:
    await ensure_topics(kafka_settings, [TopicSpec(unique_topic, 2)])
    producer = make_producer(kafka_settings)
    await producer.start()
    sent = [{"n": n, "text": f"mensaje número {n}"} for n in range(4)]
    try:
        for message in sent:
            await producer.send_and_wait(
                unique_topic, json.dumps(message).encode(), key=str(message["n"]).encode()
            )
    finally:
        await producer.stop()
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=kafka_settings.bootstrap_servers)
    result = await asyncio.to_thread(
        subprocess.run,
        [*WIREWATCH, "tail", unique_topic, "--from-beginning", "--max", "4"],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    printed = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert sorted(printed, key=lambda m: m["n"]) == sent


async def test_topics_lists_partitions_and_message_counts(
    kafka_settings: KafkaSettings, unique_topic: str
) -> None:
    await ensure_topics(kafka_settings, [TopicSpec(unique_topic, 3)])
    producer = make_producer(kafka_settings)
    await producer.start()
    await producer.send_and_wait(unique_topic, b"{}", partition=1)
    await producer.stop()
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=kafka_settings.bootstrap_servers)
    result = await asyncio.to_thread(
        subprocess.run,
        [*WIREWATCH, "topics"],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    [line] = [ln for ln in result.stdout.decode().splitlines() if ln.startswith(unique_topic)]
    assert line.split()[1:4] == ["3", "1", "0:0"]


async def test_consumer_commits_survive_for_the_next_consumer_of_the_group(
    kafka_settings: KafkaSettings, unique_topic: str
) -> None:
    await ensure_topics(kafka_settings, [TopicSpec(unique_topic, 1)])
    producer = make_producer(kafka_settings)
    await producer.start()
    for n in range(3):
        await producer.send_and_wait(unique_topic, str(n).encode())
    await producer.stop()
    group = f"g-{unique_topic}"
    consumer = make_consumer(kafka_settings, unique_topic, group_id=group)
    await consumer.start()
    first = await consumer.getone()
    await consumer.commit({TopicPartition(unique_topic, 0): first.offset + 1})
    await consumer.stop()
    consumer = make_consumer(kafka_settings, unique_topic, group_id=group)
    await consumer.start()
    following = await consumer.getone()
    await consumer.stop()
    assert (first.value, following.value) == (b"0", b"1")


async def test_end_offsets_count_every_record_produced_concurrently(
    kafka_settings: KafkaSettings, unique_topic: str
) -> None:
    """Tansu reports end offsets per batch; the default producer keeps one record a batch."""
    await ensure_topics(kafka_settings, [TopicSpec(unique_topic, 1)])
    producer = make_producer(kafka_settings)
    await producer.start()
    try:
        futures = [await producer.send(unique_topic, b"x", partition=0) for _ in range(5)]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    consumer = make_consumer(kafka_settings, group_id=None)
    await consumer.start()
    try:
        partition = TopicPartition(unique_topic, 0)
        assert (await consumer.end_offsets([partition]))[partition] == 5
    finally:
        await consumer.stop()
