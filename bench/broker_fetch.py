"""`make bench-broker-fetch`: what one fetch costs the embedded broker as a topic grows.

Tansu 0.6 has no DeleteRecords and applies no retention on its own, so the pipeline's topics
only grow on it. This benchmark fills a 4-partition topic step by step and, after each step,
reads the last few records of every partition again and again, printing the broker's CPU time
per fetch (from ``/proc``) and its ratio to the first step's: a broker that finds an offset
through an index, as Apache Kafka does, would print ratios near 1. It explains why long runs
(``make soak``) slow down on the embedded broker.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.processes import tree_cpu_seconds
from services.common.kafka import make_consumer, make_producer
from services.common.settings import KafkaSettings
from services.common.topics import TopicSpec, ensure_topics
from wirewatch_tools.broker import EmbeddedBroker, Storage

PARTITIONS = 4
RECORD = b"x" * 4000
TAIL = 5  # records read back from each partition per fetch
FETCHES = 20


async def fetch_cost(consumer: AIOKafkaConsumer, topic: str, broker_pid: int) -> float:
    """Broker CPU seconds per fetch of the last ``TAIL`` records of every partition."""
    partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    consumer.assign(partitions)
    total = 0.0
    for _ in range(FETCHES):
        ends = await consumer.end_offsets(partitions)
        wanted = 0
        for partition in partitions:
            consumer.seek(partition, max(0, ends[partition] - TAIL))
            wanted += min(TAIL, ends[partition])
        before = tree_cpu_seconds(broker_pid)
        got = 0
        while got < wanted:
            batches = await consumer.getmany(timeout_ms=1000)
            got += sum(len(records) for records in batches.values())
        total += tree_cpu_seconds(broker_pid) - before
    return total / FETCHES


async def run(broker: EmbeddedBroker, steps: int, step_records: int) -> None:
    assert broker.process is not None
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
    topics = [TopicSpec(name, PARTITIONS) for name in ("bench.small", "bench.big")]
    await ensure_topics(kafka, topics)
    producer = make_producer(kafka)
    consumer = make_consumer(kafka, group_id=None)
    await producer.start()
    await consumer.start()
    try:
        for topic in ("bench.small", "bench.big"):
            sends = [await producer.send(topic, RECORD) for _ in range(PARTITIONS * TAIL)]
            await asyncio.gather(*sends)
        baseline = await fetch_cost(consumer, "bench.small", broker.process.pid)
        print(
            f"baseline: {TAIL} records from each of {PARTITIONS} partitions of a topic of "
            f"{PARTITIONS * TAIL}: {baseline * 1000:.1f} ms of broker CPU per fetch"
        )
        size, first_step = PARTITIONS * TAIL, 0.0
        for _ in range(steps):
            sends = [await producer.send("bench.big", RECORD) for _ in range(step_records)]
            await asyncio.gather(*sends)
            size += step_records
            cost = await fetch_cost(consumer, "bench.big", broker.process.pid)
            first_step = first_step or cost
            ratio = cost / first_step if first_step else float("nan")
            print(
                f"topic of {size:7,} records ({size // PARTITIONS:6,} a partition): "
                f"{cost * 1000:6.1f} ms per fetch, {ratio:4.1f}x the first step's"
            )
    finally:
        await consumer.stop()
        await producer.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--storage", choices=["memory", "s3"], default="memory")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--step-records", type=int, default=20_000)
    args = parser.parse_args()
    storage: Storage = args.storage
    print(f"Tansu ({storage} storage), records of {len(RECORD)} bytes, one record per batch")
    with EmbeddedBroker(storage=storage) as broker:
        asyncio.run(run(broker, args.steps, args.step_records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
