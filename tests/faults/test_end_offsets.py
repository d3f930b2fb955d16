"""End offsets on the s3-backed broker, where Tansu's ListOffsets answer is the end of the
partition's first batch, however many came after. Faust recovers a table by reading its
changelog up to the end offsets, so with that answer a restarted worker lost its latest writes
(the fault suite's kill cases found it), and the lag gauges read low."""

from __future__ import annotations

from aiokafka import TopicPartition

from services.common.kafka import end_offsets, make_consumer, make_producer, probe_end_offsets
from services.common.settings import KafkaSettings
from services.common.topics import TopicSpec, ensure_topics
from wirewatch_tools.broker import EmbeddedBroker


async def produce_five_one_by_one(kafka: KafkaSettings, topic: str, *, partitions: int) -> None:
    """Records a, b, c, d, e into partition 0, each acknowledged before the next (five batches)."""
    await ensure_topics(kafka, [TopicSpec(topic, partitions)])
    producer = make_producer(kafka)
    await producer.start()
    try:
        for value in (b"a", b"b", b"c", b"d", b"e"):
            await (await producer.send(topic, value, partition=0))
    finally:
        await producer.stop()


async def test_end_offsets_count_every_record_on_s3_storage(
    faults_broker: EmbeddedBroker,
) -> None:
    kafka = KafkaSettings(bootstrap_servers=faults_broker.bootstrap_servers)
    topic = "end-offsets-s3"
    await produce_five_one_by_one(kafka, topic, partitions=2)
    partitions = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
    expected = {partitions[0]: 5, partitions[1]: 0}
    assert await probe_end_offsets(kafka, partitions) == expected
    consumer = make_consumer(kafka, group_id=None)
    await consumer.start()
    try:
        assert await end_offsets(consumer, partitions) == expected
        # The consumer is left unassigned, ready for whatever its owner does next.
        assert consumer.assignment() == set()
    finally:
        await consumer.stop()


async def test_end_offsets_of_no_partition_are_empty_not_a_cancelled_task(
    faults_broker: EmbeddedBroker,
) -> None:
    """What Faust asks on a worker given no changelog partition (a second replica)."""
    kafka = KafkaSettings(bootstrap_servers=faults_broker.bootstrap_servers)
    for _ in range(3):
        assert await probe_end_offsets(kafka, []) == {}
