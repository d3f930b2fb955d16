"""The dedup worker on the real broker: results, dead letters, and recovery after SIGKILL.

Articles are real news leads from ``shared/eval/neardup`` (np008 is an AFP story, np010 a
verbatim republication of it, np019 an unrelated Reuters story).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from services.common.kafka import FIRST_SEEN_HEADER, make_consumer, make_producer
from services.common.settings import KafkaSettings

# A restart after SIGKILL waits for the dead member to leave the group, then recovers the table.
STARTUP_SECONDS = 120


def article_message(row: dict[str, Any], hour: int) -> dict[str, Any]:
    digest = hashlib.sha256(row["url"].encode()).hexdigest()[:32]
    return {
        "schema": "article.v1",
        "article_id": digest,
        "url": row["url"],
        "title": row.get("title") or "",
        "text": row["text"],
        "published": f"2025-03-11T{hour:02d}:00:00+00:00",
        "source": row["source"],
        "content_hash": hashlib.sha256(row["text"].encode()).hexdigest()[:32],
        "fetched_at": f"2025-03-11T{hour:02d}:05:00Z",
        "first_seen": f"2025-03-11T{hour:02d}:04:00Z",
    }


@pytest.fixture
def dev_rows(eval_dir: Path) -> dict[str, dict[str, Any]]:
    path = eval_dir / "neardup" / "news_pages_dev.jsonl"
    return {row["id"]: row for row in map(json.loads, path.open(encoding="utf-8"))}


class Worker:
    """``python -m services.dedup`` as a child process with its own topics and app id."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services.dedup"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(10)

    def metrics_url(self) -> str:
        ports = re.findall(
            r"metrics on (http://127\.0\.0\.1:\d+)/metrics", self.log_path.read_text()
        )
        assert ports, self.log()
        return f"{ports[-1]}/metrics"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


@pytest.fixture
def topics() -> dict[str, str]:
    base = f"it-{uuid.uuid4().hex[:12]}"
    return {
        "entries": f"{base}-entries",
        "articles": f"{base}-articles",
        "deduplicated": f"{base}-deduplicated",
        "events": f"{base}-events",
        "app_id": f"{base}-dedup",
    }


@pytest.fixture
def worker(
    kafka_settings: KafkaSettings, topics: dict[str, str], tmp_path: Path
) -> Iterator[Worker]:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "WIREWATCH_TOPIC_ENTRIES": topics["entries"],
        "WIREWATCH_TOPIC_ARTICLES": topics["articles"],
        "WIREWATCH_TOPIC_DEDUPLICATED": topics["deduplicated"],
        "WIREWATCH_TOPIC_EVENTS": topics["events"],
        "WIREWATCH_DEDUP_APP_ID": topics["app_id"],
        "WIREWATCH_DEDUP_METRICS_PORT": "0",
        "WIREWATCH_DEDUP_LOG_LEVEL": "INFO",
    }
    handle = Worker(env, tmp_path / "dedup.log")
    yield handle
    handle.stop()


async def produce(kafka: KafkaSettings, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    producer = make_producer(kafka)
    await producer.start()
    try:
        for key, value in messages:
            headers = [(FIRST_SEEN_HEADER, b"1741665840.0")]
            await producer.send_and_wait(topic, value, key=key, headers=headers)
    finally:
        await producer.stop()


async def collect(
    consumer: AIOKafkaConsumer,
    want: set[str],
    seen: dict[str, list[dict[str, Any]]],
    worker: Worker,
    *,
    times: int = 1,
) -> None:
    """Read results until every id in ``want`` has ``times`` of them (or fail with the log)."""
    deadline = asyncio.get_running_loop().time() + STARTUP_SECONDS
    while any(len(seen.get(article_id, ())) < times for article_id in want):
        exited = worker.process is not None and worker.process.poll() is not None
        if exited or asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"results missing among {want}; worker log:\n{worker.log()}")
        batch = await consumer.getmany(timeout_ms=500)
        for records in batch.values():
            for record in records:
                message = json.loads(record.value)
                message["_headers"] = dict(record.headers or ())
                seen.setdefault(message["article_id"], []).append(message)


async def wait_for_commit(kafka: KafkaSettings, group: str, topic: str, end: int) -> None:
    """Wait until the worker's group has committed ``end`` on the one-partition window topic."""
    probe = make_consumer(kafka, group_id=group)
    await probe.start()
    try:
        for _ in range(60):
            committed = await probe.committed(TopicPartition(topic, 0))
            if committed is not None and committed >= end:
                return
            await asyncio.sleep(0.5)
        pytest.fail(f"group {group} never committed offset {end} on {topic}")
    finally:
        await probe.stop()


async def wait_for_zero_lag(worker: Worker, topics: set[str], timeout: float = 30.0) -> None:
    """Every partition of ``topics`` reports a consumer lag, and all of them are 0."""
    lag = re.compile(r"wirewatch_dedup_consumer_lag_messages\{([^}]*)\} (\S+)")
    deadline = time.monotonic() + timeout
    reported: dict[str, float] = {}
    while time.monotonic() < deadline:
        async with httpx.AsyncClient() as client:
            metrics = (await client.get(worker.metrics_url())).text
        reported = {}
        for labels, value in lag.findall(metrics):
            topic = re.search(r'topic="([^"]*)"', labels)
            if topic is not None:
                reported[topic.group(1)] = max(reported.get(topic.group(1), 0.0), float(value))
        if set(reported) >= topics and not any(reported[t] for t in topics):
            return
        await asyncio.sleep(1)
    pytest.fail(f"dedup's consumer lag never reached 0 on {sorted(topics)}: {reported}")


async def test_killed_worker_recovers_its_window_and_assigns_a_later_copy_to_the_earlier_story(
    kafka_settings: KafkaSettings,
    topics: dict[str, str],
    worker: Worker,
    dev_rows: dict[str, dict[str, Any]],
) -> None:
    original = article_message(dev_rows["np008"], 9)
    unrelated = article_message(dev_rows["np019"], 10)
    copy = article_message(dev_rows["np010"], 12)
    worker.start()
    consumer = make_consumer(kafka_settings, topics["deduplicated"], group_id=None)
    dlq = make_consumer(kafka_settings, f"{topics['articles']}.dlq", group_id=None)
    await consumer.start()
    await dlq.start()
    seen: dict[str, list[dict[str, Any]]] = {}
    try:
        await produce(
            kafka_settings,
            topics["articles"],
            [
                (original["url"].encode(), json.dumps(original).encode()),
                (b"broken", b"{not json"),
                (unrelated["url"].encode(), json.dumps(unrelated).encode()),
            ],
        )
        await collect(consumer, {original["article_id"], unrelated["article_id"]}, seen, worker)
        dead = await dlq.getmany(timeout_ms=10_000)
        letters = [json.loads(r.value) for records in dead.values() for r in records]
        assert [letter["reason"] for letter in letters] == ["invalid_json"]

        first = seen[original["article_id"]][0]
        assert first["outcome"] == "new_story" and first["story_id"] == original["article_id"]
        assert first["article"]["text"] == original["text"]
        assert first["_headers"][FIRST_SEEN_HEADER] == b"1741665840.0"
        assert seen[unrelated["article_id"]][0]["story_id"] == unrelated["article_id"]
        async with httpx.AsyncClient() as client:
            metrics = (await client.get(worker.metrics_url())).text
        assert 'wirewatch_dedup_articles_total{outcome="new_story"} 2.0' in metrics
        assert "wirewatch_dedup_window_articles 2.0" in metrics
        assert "wirewatch_dedup_candidates_count 2.0" in metrics
        assert "wirewatch_dedup_lookup_duration_seconds_count 2.0" in metrics
        assert re.search(
            r'wirewatch_dedup_dead_letters_total\{[^}]*reason="invalid_json"[^}]*\} 1\.0', metrics
        )
        await wait_for_zero_lag(worker, {topics["articles"], f"{topics['app_id']}-window"})

        # Everything so far is committed, so the restarted worker cannot relearn it from the
        # input: the window must come back from the table's changelog.
        await wait_for_commit(kafka_settings, topics["app_id"], f"{topics['app_id']}-window", 2)
        worker.kill()
        worker.start()
        await produce(
            kafka_settings,
            topics["articles"],
            [
                (copy["url"].encode(), json.dumps(copy).encode()),
                (original["url"].encode(), json.dumps(original).encode()),
            ],
        )
        await collect(consumer, {copy["article_id"]}, seen, worker)
        await collect(consumer, {original["article_id"]}, seen, worker, times=2)
    finally:
        await consumer.stop()
        await dlq.stop()

    later = seen[copy["article_id"]][0]
    assert later["story_id"] == original["article_id"], worker.log()
    assert later["copy_of"] == original["article_id"]
    assert later["outcome"] == "copy" and later["is_first_in_story"] is False
    assert "window rebuilt from the table: 2 articles" in worker.log()
    # At-least-once: the original delivered again gets exactly the same result as the first time.
    replayed = seen[original["article_id"]][1]
    assert {k: v for k, v in replayed.items() if k != "_headers"} == {
        k: v for k, v in first.items() if k != "_headers"
    }
    assert worker.stop() == 0
