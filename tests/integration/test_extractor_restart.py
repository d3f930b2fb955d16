"""Killing the extractor (SIGKILL, workers included) mid-stream and restarting it loses nothing.

At-least-once: offsets are committed only after the outputs were acknowledged, so after a
crash the restarted service replays what was in flight. Pages are real benchmark pages
(scrapinghub/article-extraction-benchmark, MIT) served from 127.0.0.2 with a small delay.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from aiohttp import web

from services.common.kafka import make_consumer, make_producer
from services.common.metrics import bound_port
from services.common.settings import KafkaSettings, TopicNames
from services.common.topics import ensure_topics, pipeline_topics
from wirewatch_tools.broker import free_port

ENTRIES = 120


def start_extractor(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "services.extractor"],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the kill takes its workers too
    )


async def test_sigkill_mid_stream_and_restart_loses_no_entry(
    kafka_settings: KafkaSettings, eval_dir: Path, tmp_path: Path
) -> None:
    paths = sorted((eval_dir / "extraction" / "html").glob("*.html.gz"))[:60]
    pages = {path.name[:16]: gzip.decompress(path.read_bytes()) for path in paths}

    async def page(request: web.Request) -> web.Response:
        await asyncio.sleep(0.1)
        return web.Response(body=pages[request.match_info["id"]], content_type="text/html")

    app = web.Application()
    app.router.add_get("/p/{id}", page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.2", 0)
    await site.start()
    base = f"http://127.0.0.2:{bound_port(site)}"

    suffix = uuid.uuid4().hex
    topics = TopicNames(
        entries=f"it-entries-{suffix}",
        articles=f"it-articles-{suffix}",
        failed_articles=f"it-failed-{suffix}",
    )
    await ensure_topics(kafka_settings, pipeline_topics(topics))
    env = dict(
        os.environ,
        KAFKA_BOOTSTRAP_SERVERS=kafka_settings.bootstrap_servers,
        WIREWATCH_TOPIC_ENTRIES=topics.entries,
        WIREWATCH_TOPIC_ARTICLES=topics.articles,
        WIREWATCH_TOPIC_FAILED_ARTICLES=topics.failed_articles,
        WIREWATCH_EXTRACTOR_GROUP_ID=f"it-{suffix}",
        WIREWATCH_EXTRACTOR_WORKERS="2",
        WIREWATCH_EXTRACTOR_METRICS_PORT=str(free_port()),
        WIREWATCH_FETCH_ALLOWED_NETWORKS="127.0.0.2/32",
        WIREWATCH_FETCH_MIN_HOST_INTERVAL_SECONDS="0",
        WIREWATCH_FETCH_PER_HOST_CONCURRENCY="4",
    )
    log = tmp_path / "extractor.log"
    urls = [f"{base}/p/{page_id}?copy={n}" for n in range(2) for page_id in pages]
    assert len(urls) == ENTRIES
    producer = make_producer(kafka_settings)
    consumer = make_consumer(kafka_settings, topics.articles, topics.failed_articles, group_id=None)
    await producer.start()
    await consumer.start()
    seen: dict[bytes, int] = {}

    async def collect_until(count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(seen) < count and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=100)).values():
                for record in records:
                    seen[record.key] = seen.get(record.key, 0) + 1

    first = start_extractor(env, log)
    second: subprocess.Popen[bytes] | None = None
    try:
        for url in urls:
            entry = {
                "schema": "feed_entry.v1",
                "entry_id": url,
                "feed_url": f"{base}/feed.xml",
                "url": url,
                "title": "t",
                "first_seen": "2026-11-23T00:00:00Z",
            }
            await producer.send(topics.entries, json.dumps(entry).encode(), key=url.encode())
        await producer.flush()

        await collect_until(15, timeout=90)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        done_before_kill = len(seen)
        assert 15 <= done_before_kill < ENTRIES, "the kill must land mid-stream"

        second = start_extractor(env, log)
        await collect_until(ENTRIES, timeout=120)
        assert set(seen) == {url.encode() for url in urls}, log.read_text()[-3000:]

        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=60) == 0
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        await consumer.stop()
        await producer.stop()
        await runner.cleanup()
