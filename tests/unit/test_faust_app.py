"""Consumers wait the configured time for data, not Faust's fixed 1.5 s (Tansu answers a waiting
fetch on a topic of several partitions only when that wait runs out: it is the latency of a hop)."""

from __future__ import annotations

from services.common.faust_app import make_faust_app
from services.common.kafka import make_consumer
from services.common.settings import KafkaSettings

UNREACHABLE = "127.0.0.1:1"


async def test_faust_worker_consumer_waits_the_configured_fetch_time() -> None:
    kafka = KafkaSettings(bootstrap_servers=UNREACHABLE, fetch_max_wait_ms=123)
    app = make_faust_app("it-fetch-wait", kafka)
    consumer = app.consumer._thread._create_worker_consumer(app.transport)
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
