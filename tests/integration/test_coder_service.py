"""The coder service as a real process (``python -m services.coder``) on the real embedded broker.

A story arrives in three articles (three of the seed articles, origin in
wirewatch_tools/demo/seeds/ORIGIN.md), one at a time: the announced Trump-Putin call must stay
one event whose counts grow. A second worker (new group, new table) replaying the same articles
must give the same event ids. A malformed message must reach the DLQ with its reason.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.common.kafka import FIRST_SEEN_HEADER, encode_json, make_consumer, make_producer
from services.common.settings import KafkaSettings

SEEDS = Path(__file__).resolve().parents[2] / "wirewatch_tools" / "demo" / "seeds"
STORY = ["001_fc1665f0818841e7.txt", "002_ebc0fb74b416bdc1.txt", "003_8b029c9b536525ad.txt"]
TIMEOUT = 90.0
IDLE_SECONDS = 6.0


def dedup_message(n: int, name: str) -> dict[str, Any]:
    text = (SEEDS / name).read_text(encoding="utf-8")
    article_id = hashlib.sha256(name.encode()).hexdigest()[:32]
    url = f"http://127.0.0.1:8008/articles/{n}.html"
    return {
        "schema": "dedup_result.v1",
        "article_id": article_id,
        "story_id": "story-1",
        "copy_of": None,
        "is_first_in_story": n == 0,
        "outcome": "new_story" if n == 0 else "rewrite",
        "similarity": 0.0,
        "signals": [],
        "article": {
            "schema": "article.v1",
            "article_id": article_id,
            "url": url,
            "title": text.strip().splitlines()[0],
            "text": text,
            "published": "2025-03-17T09:00:00+00:00",
            "source": f"Seed Outlet {n}",
            "content_hash": hashlib.sha256(text.encode()).hexdigest()[:32],
            "fetched_at": "2025-03-17T09:01:13.001Z",
            "first_seen": "2025-03-17T09:01:12.345Z",
        },
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def scrape(port: int, path: str = "/metrics") -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def start_coder(
    bootstrap: str, topic: str, app_id: str, log: Path, metrics_port: int = 0
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "WIREWATCH_TOPIC_DEDUPLICATED": topic,
        "WIREWATCH_TOPIC_EVENTS": f"{topic}-events-{app_id}",
        "WIREWATCH_TOPIC_ENTRIES": f"{topic}-entries",
        "WIREWATCH_TOPIC_ARTICLES": f"{topic}-articles",
        "WIREWATCH_CODER_APP_ID": app_id,
        "WIREWATCH_CODER_METRICS_PORT": str(metrics_port),
        "WIREWATCH_CODER_DATA_DIR": str(log.parent / f"faust-{app_id}"),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "services.coder"],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in started:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class EventReader:
    """Reads a topic from the beginning, keeping the latest value per key."""

    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        self.consumer = make_consumer(kafka, topic, group_id=None)
        self.latest: dict[str, dict[str, Any]] = {}

    async def __aenter__(self) -> EventReader:
        await self.consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()

    async def until_idle(self, seconds: float) -> dict[str, dict[str, Any]]:
        """Read until nothing new arrives for ``seconds``."""
        while True:
            batch = await self.consumer.getmany(timeout_ms=int(seconds * 1000))
            if not batch:
                return self.latest
            for records in batch.values():
                for record in records:
                    if record.value is None:
                        self.latest.pop(record.key.decode(), None)
                    else:
                        self.latest[record.key.decode()] = json.loads(record.value)

    async def wait_for(
        self, predicate: Any, log: Path, process: subprocess.Popen[bytes]
    ) -> dict[str, dict[str, Any]]:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and process.poll() is None:
            batch = await self.consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    if record.value is None:  # tombstone: the event moved to another id
                        self.latest.pop(record.key.decode(), None)
                    else:
                        self.latest[record.key.decode()] = json.loads(record.value)
            if predicate(self.latest):
                return self.latest
        summary = [
            (
                e["source"]["cameo_code"],
                e["target"]["cameo_code"],
                e["action"]["cameo_code"],
                e["num_articles"],
            )
            for e in self.latest.values()
        ]
        pytest.fail(
            f"condition not met in {TIMEOUT}s; events {summary}; "
            f"coder log:\n{log.read_text()[-3000:]}"
        )


def call_events(latest: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        e
        for e in latest.values()
        if e["source"]["country"] == "USA"
        and e["target"]["country"] == "RUS"
        and e["action"]["cameo_code"] in ("036", "040", "041")
    ]


async def test_story_in_three_articles_grows_one_event_and_replay_keeps_event_ids(
    kafka_settings: KafkaSettings,
    unique_topic: str,
    processes: list[subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    log = tmp_path / "coder.log"
    port = free_port()
    processes.append(
        start_coder(kafka_settings.bootstrap_servers, unique_topic, "first", log, port)
    )
    producer = make_producer(kafka_settings)
    await producer.start()
    first_seen = str(time.time()).encode()
    try:
        async with EventReader(kafka_settings, f"{unique_topic}-events-first") as reader:
            for n, name in enumerate(STORY):
                message = dedup_message(n, name)
                await producer.send_and_wait(
                    unique_topic,
                    encode_json(message),
                    key=message["article_id"].encode(),
                    headers=[(FIRST_SEEN_HEADER, first_seen)],
                )
                expected = n + 1
                latest = await reader.wait_for(
                    lambda got, k=expected: [e["num_articles"] for e in call_events(got)] == [k],
                    log,
                    processes[0],
                )
                (call,) = call_events(latest)
                assert call["num_sources"] == expected
                assert len(call["evidence"]) == expected
                assert call["planned_date"] == "2025-03-18"
                await asyncio.sleep(1.0)
            status, metrics = scrape(port)
            assert status == 200
            assert "wirewatch_coder_articles_coded_total 3.0" in metrics
            assert "wirewatch_coder_coding_duration_seconds_count 3.0" in metrics
            assert 'wirewatch_coder_events_total{cameo_root="03",kind="update"} 2.0' in metrics
            assert "wirewatch_pipeline_end_to_end_latency_seconds_count" in metrics
            assert scrape(port, "/readyz")[0] == 200
            # At-least-once redelivery of an article already counted changes nothing.
            again = dedup_message(0, STORY[0])
            await producer.send_and_wait(
                unique_topic, encode_json(again), key=again["article_id"].encode()
            )
            await producer.send_and_wait(unique_topic, b"{not json", key=b"broken")
            first_ids = set(await reader.until_idle(IDLE_SECONDS))
            (call,) = call_events(reader.latest)
            assert call["num_articles"] == 3
            # Lag is reported on the input and on the internal mentions topic, and drains to 0.
            lag = re.compile(r"wirewatch_coder_consumer_lag_messages\{([^}]*)\} (\S+)")
            deadline = time.monotonic() + 30
            while True:
                found = {
                    topic: float(value)
                    for labels, value in lag.findall(scrape(port)[1])
                    for topic in re.findall(r'topic="([^"]*)"', labels)
                }
                wanted = {unique_topic, "first-mentions"}
                if wanted <= set(found) and not any(found[t] for t in wanted):
                    break
                assert time.monotonic() < deadline, found
                await asyncio.sleep(1)
        dlq = make_consumer(kafka_settings, f"{unique_topic}.dlq", group_id=None)
        await dlq.start()
        try:
            letters = await dlq.getmany(timeout_ms=int(TIMEOUT * 1000), max_records=1)
        finally:
            await dlq.stop()
        (records,) = letters.values()
        assert json.loads(records[0].value)["reason"] == "invalid_json"

        replay_log = tmp_path / "replay.log"
        processes.append(
            start_coder(kafka_settings.bootstrap_servers, unique_topic, "replay", replay_log)
        )
        async with EventReader(kafka_settings, f"{unique_topic}-events-replay") as replay:
            replayed = await replay.wait_for(
                lambda got: set(got) == first_ids, replay_log, processes[1]
            )
        assert set(replayed) == first_ids
        (call,) = call_events(replayed)
        assert call["num_articles"] == 3
    finally:
        await producer.stop()
