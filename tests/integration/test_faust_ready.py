"""A Faust worker must be consuming within 10 s of starting against the embedded broker."""

import asyncio
import subprocess
import sys

from services.common.kafka import make_producer
from services.common.settings import KafkaSettings
from services.common.topics import TopicSpec, ensure_topics

READY_LIMIT_SECONDS = 10


async def test_faust_worker_consumes_within_ten_seconds_of_starting(
    kafka_settings: KafkaSettings, unique_topic: str
) -> None:
    await ensure_topics(kafka_settings, [TopicSpec(unique_topic, 4)])
    producer = make_producer(kafka_settings)
    await producer.start()
    await producer.send_and_wait(unique_topic, b"hello")
    await producer.stop()
    result = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "tests.integration.faust_ready_app",
            kafka_settings.bootstrap_servers,
            unique_topic,
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    output = result.stdout.decode() + result.stderr.decode()
    assert "READY" in output, output[-3000:]
    seconds = float(output.split("READY", 1)[1].split()[0])
    print(f"faust worker consumed its first message {seconds:.2f}s after start")  # noqa: T201
    assert seconds < READY_LIMIT_SECONDS
