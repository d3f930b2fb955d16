"""update_consumer_lag against the real broker: lag is end offset minus committed offset."""

from __future__ import annotations

import asyncio
import time

from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry

from services.common.kafka import make_consumer, make_producer
from services.common.metrics import ServiceMetrics, update_consumer_lag
from services.common.settings import KafkaSettings
from services.common.topics import TopicSpec, ensure_topics


def lag_samples(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    return {
        (s.labels["topic"], s.labels["partition"]): s.value
        for metric in registry.collect()
        for s in metric.samples
        if s.name == "wirewatch_extractor_consumer_lag_messages"
    }


async def test_lag_gauge_follows_commits_and_forgets_unassigned_partitions(
    kafka_settings: KafkaSettings, unique_topic: str
) -> None:
    await ensure_topics(kafka_settings, [TopicSpec(unique_topic, 2)])
    producer = make_producer(kafka_settings)
    await producer.start()
    try:
        for i in range(5):
            await producer.send_and_wait(unique_topic, b"x", partition=0, key=str(i).encode())
        await producer.send_and_wait(unique_topic, b"y", partition=1)
    finally:
        await producer.stop()

    registry = CollectorRegistry()
    metrics = ServiceMetrics("extractor", registry=registry)
    p0, p1 = TopicPartition(unique_topic, 0), TopicPartition(unique_topic, 1)
    consumer = make_consumer(kafka_settings, group_id=f"lag-{unique_topic}")
    await consumer.start()
    try:
        consumer.assign([p0, p1])
        # Nothing committed yet: everything on each partition is lag.
        assert await update_consumer_lag(consumer, metrics) == {p0: 5, p1: 1}
        assert lag_samples(registry) == {(unique_topic, "0"): 5.0, (unique_topic, "1"): 1.0}

        await consumer.commit({p0: 2, p1: 1})
        deadline = time.monotonic() + 10
        while await update_consumer_lag(consumer, metrics) != {p0: 3, p1: 0}:
            assert time.monotonic() < deadline, lag_samples(registry)
            await asyncio.sleep(0.1)
        assert lag_samples(registry) == {(unique_topic, "0"): 3.0, (unique_topic, "1"): 0.0}

        consumer.assign([p0])  # as after a rebalance that took partition 1 away
        await update_consumer_lag(consumer, metrics)
        assert lag_samples(registry) == {(unique_topic, "0"): 3.0}
    finally:
        await consumer.stop()
