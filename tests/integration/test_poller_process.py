"""`python -m services.poller` as `wirewatch run` starts it: demo feed in, entries out."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from aiokafka import ConsumerRecord

from services.common.kafka import FIRST_SEEN_HEADER, header_value
from services.common.settings import KafkaSettings
from tests.integration.poller_helpers import read_topic
from wirewatch_tools.broker import free_port, wait_for_port


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        body: bytes = response.read()
        return body.decode()


async def test_service_process_emits_the_demo_feed_serves_metrics_and_stops_on_sigterm(
    kafka_settings: KafkaSettings, unique_topic: str, tmp_path: Path
) -> None:
    demo_port, metrics_port = free_port(), free_port()
    demo = subprocess.Popen(
        [sys.executable, "-m", "wirewatch_tools.cli", "demo-server", "--port", str(demo_port)]
    )
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text(
        f"feeds:\n  - url: http://127.0.0.1:{demo_port}/feed.xml\n    name: demo\n",
        encoding="utf-8",
    )
    env = dict(
        os.environ,
        KAFKA_BOOTSTRAP_SERVERS=kafka_settings.bootstrap_servers,
        WIREWATCH_POLLER_FEEDS=str(feeds),
        WIREWATCH_POLLER_METRICS_PORT=str(metrics_port),
        WIREWATCH_POLLER_STATE_TOPIC=f"{unique_topic}.state",
        WIREWATCH_TOPIC_ENTRIES=unique_topic,
        WIREWATCH_FETCH_ALLOWED_NETWORKS="127.0.0.1/32",
    )
    # The feed server must answer before the poller's first poll: a failed first poll is retried
    # only after the failing-feed interval, longer than this test waits.
    try:
        wait_for_port(demo_port, timeout=15, process=demo)
    except BaseException:
        demo.kill()
        demo.wait()
        raise
    poller = subprocess.Popen([sys.executable, "-m", "services.poller"], env=env)
    try:
        wait_for_port(metrics_port, timeout=30, process=poller)
        records: list[ConsumerRecord] = []
        deadline = time.monotonic() + 30
        while len(records) < 5 and time.monotonic() < deadline:
            time.sleep(0.5)
            records = await read_topic(kafka_settings, unique_topic, settle=0.3)
        metrics = scrape(metrics_port)
        poller.send_signal(signal.SIGTERM)
        assert poller.wait(timeout=20) == 0
    finally:
        for process in (poller, demo):
            if process.poll() is None:
                process.kill()
                process.wait()

    messages = [json.loads(record.value) for record in records]
    assert len(messages) == 5
    assert all(m["url"].endswith(".html") and "utm_" not in m["url"] for m in messages)
    assert all(header_value(r.headers, FIRST_SEEN_HEADER) for r in records)
    assert 'wirewatch_poller_polls_total{outcome="200"} 1.0' in metrics
    assert "wirewatch_poller_entries_emitted_total 5.0" in metrics
    assert 'wirewatch_poller_feed_last_success_timestamp_seconds{feed="demo"}' in metrics
    assert 'wirewatch_poller_feed_interval_seconds{feed="demo"}' in metrics
    assert "wirewatch_poller_ready 1.0" in metrics
    assert "process_resident_memory_bytes" in metrics
