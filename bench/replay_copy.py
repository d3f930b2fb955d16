"""Copy throughput of `wirewatch replay copy` against a bare consume-and-produce loop.

Both copy the same N messages (about 1 KB each, keys and headers) between topics of one
embedded Tansu broker (memory storage), in the same run. The replay pays for provenance
headers, a checkpoint every 2,000 messages and the time look-up; the ratio says what that costs.
"""

from __future__ import annotations

import asyncio
import time
from asyncio import Future
from typing import Any

from aiokafka import TopicPartition

from services.common import ranges
from services.common.kafka import make_producer
from services.common.settings import KafkaSettings
from services.common.topics import TopicSpec, ensure_topics
from wirewatch_tools.broker import EmbeddedBroker
from wirewatch_tools.replay import app
from wirewatch_tools.replay.progress import Progress

MESSAGES = 20_000
PARTITIONS = 4
T0 = 1_742_200_000_000


async def fill(kafka: KafkaSettings, topic: str) -> None:
    await ensure_topics(kafka, [TopicSpec(topic, PARTITIONS)])
    producer = make_producer(kafka)
    await producer.start()
    body = ("x" * 1000).encode()
    futures = [
        await producer.send(
            topic,
            body,
            key=f"key-{n}".encode(),
            headers=[("wirewatch-trace-id", f"{n:032x}".encode())],
            timestamp_ms=T0 + n * 10,
        )
        for n in range(MESSAGES)
    ]
    await asyncio.gather(*futures)
    await producer.stop()


async def bare_copy(kafka: KafkaSettings, source: str, target: str) -> float:
    """The baseline: read every record and send it on, nothing else."""
    await ensure_topics(kafka, [TopicSpec(target, PARTITIONS)])
    started = time.perf_counter()
    consumer = await ranges.start_consumer(kafka, group_id=None)
    producer = make_producer(kafka)
    await producer.start()
    tps = [TopicPartition(source, p) for p in range(PARTITIONS)]
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    futures: list[Future[Any]] = []
    while len(futures) < MESSAGES:
        for records in (await consumer.getmany(timeout_ms=300, max_records=500)).values():
            for r in records:
                futures.append(
                    await producer.send(
                        target,
                        r.value,
                        key=r.key,
                        headers=list(r.headers),
                        timestamp_ms=r.timestamp,
                    )
                )
    await asyncio.gather(*futures)
    elapsed = time.perf_counter() - started
    await producer.stop()
    await consumer.stop()
    return elapsed


async def replay_copy(kafka: KafkaSettings, source: str, target: str) -> tuple[float, float, int]:
    settings = app.ReplaySettings(kafka=kafka)
    started = time.perf_counter()
    request = ranges.CopyRequest(source, target, since_ms=T0, until_ms=T0 + MESSAGES * 10)
    plan, checkpoint = await app.prepare_copy(
        kafka, settings, request, f"bench-{target}", restart=True
    )
    planned = time.perf_counter() - started
    outcome = await app.copy_range(
        kafka,
        settings,
        plan,
        f"bench-{target}",
        checkpoint=checkpoint,
        stop=asyncio.Event(),
        progress=lambda total: Progress(
            total, label="replay", interactive=False, every_seconds=1e9
        ),
    )
    return time.perf_counter() - started, planned, outcome.copied


async def main(bootstrap: str) -> None:
    kafka = KafkaSettings(bootstrap_servers=bootstrap)
    await fill(kafka, "bench.source")
    baseline = await bare_copy(kafka, "bench.source", "bench.bare")
    total, planned, copied = await replay_copy(kafka, "bench.source", "bench.replayed")
    assert copied == MESSAGES, copied
    print(f"messages: {MESSAGES} x ~1 KB, {PARTITIONS} partitions, Tansu memory storage")
    print(f"baseline bare consume+produce: {baseline:.2f}s, {MESSAGES / baseline:,.0f} msg/s")
    print(
        f"wirewatch replay copy (time range): {total:.2f}s, {MESSAGES / total:,.0f} msg/s "
        f"(of which planning with the timestamp look-up {planned:.2f}s)"
    )
    print(f"ratio replay/baseline throughput: {baseline / total:.2f}")


if __name__ == "__main__":
    with EmbeddedBroker(storage="memory") as broker:
        asyncio.run(main(broker.bootstrap_servers))
