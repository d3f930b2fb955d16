"""Extractor throughput through the real broker against a bare single-process trafilatura loop.

The service runs as its own process (``python -m services.extractor``, worker processes for
extraction) on an embedded Tansu broker, fetching the 181 benchmark pages (each served
``COPIES`` times under distinct URLs) from a local HTTP server. Its articles/s, from the first
entry produced to the last result consumed, is compared with a plain
``trafilatura.extract(html, include_comments=False)`` loop over the same pages in one process,
measured in the same run: rounds alternate the two on the same machine and the median of the
per-round ratios is the figure (the machine's cores are shared, so single runs are noisy).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import trafilatura
from aiohttp import web

from bench.evaldata import eval_dir
from bench.extract_quality import load_pages
from bench.processes import tree_cpu_seconds, wait_ready
from services.common.kafka import make_consumer, make_producer
from services.common.metrics import bound_port
from services.common.settings import KafkaSettings, TopicNames
from services.common.topics import ensure_topics, pipeline_topics
from wirewatch_tools.broker import EmbeddedBroker, free_port

COPIES = int(os.environ.get("BENCH_EXTRACT_COPIES", "2"))
ROUNDS = int(os.environ.get("BENCH_EXTRACT_ROUNDS", "3"))
TARGET_RATIO = 0.8


def bare_loop(bodies: list[bytes]) -> tuple[float, float]:
    """Articles per second of a plain trafilatura loop in this process, and the cores it got."""
    started, cpu = time.perf_counter(), time.process_time()
    for body in bodies:
        trafilatura.extract(body, include_comments=False)
    wall = time.perf_counter() - started
    return len(bodies) / wall, (time.process_time() - cpu) / wall


async def serve_pages(pages: dict[str, bytes]) -> tuple[web.AppRunner, str]:
    async def page(request: web.Request) -> web.Response:
        return web.Response(body=pages[request.match_info["id"]], content_type="text/html")

    app = web.Application()
    app.router.add_get("/p/{id}", page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{bound_port(site)}"


async def measure(bootstrap: str, pages: dict[str, bytes], log: Path) -> list[tuple[float, float]]:
    """``ROUNDS`` × (bare loop articles/s, service entries/s), alternating on one machine."""
    kafka = KafkaSettings(bootstrap_servers=bootstrap)
    suffix = uuid.uuid4().hex[:8]
    topics = TopicNames(
        entries=f"bench-entries-{suffix}",
        articles=f"bench-articles-{suffix}",
        failed_articles=f"bench-failed-{suffix}",
    )
    await ensure_topics(kafka, pipeline_topics(topics))
    runner, base = await serve_pages(pages)
    metrics_port = free_port()
    env = dict(
        os.environ,
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        WIREWATCH_TOPIC_ENTRIES=topics.entries,
        WIREWATCH_TOPIC_ARTICLES=topics.articles,
        WIREWATCH_TOPIC_FAILED_ARTICLES=topics.failed_articles,
        WIREWATCH_EXTRACTOR_METRICS_PORT=str(metrics_port),
        WIREWATCH_EXTRACTOR_GROUP_ID=f"bench-{suffix}",
        WIREWATCH_FETCH_ALLOWED_NETWORKS="127.0.0.1/32",
        # One local host serves every page: no politeness spacing in a benchmark.
        WIREWATCH_FETCH_MIN_HOST_INTERVAL_SECONDS="0",
        WIREWATCH_FETCH_PER_HOST_CONCURRENCY="32",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "services.extractor"],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        # Its own session, as a deployed service runs apart from the broker and the page
        # server; otherwise autogroup scheduling makes it share one CPU share with them.
        start_new_session=True,
    )
    consumer = make_consumer(kafka, topics.articles, topics.failed_articles, group_id=None)
    producer = make_producer(kafka)
    bodies = [body for _ in range(COPIES) for body in pages.values()]
    results = []
    try:
        await asyncio.to_thread(wait_ready, "extractor", metrics_port, process)
        await consumer.start()
        await producer.start()
        for round_number in range(ROUNDS):
            bare, bare_cores = bare_loop(bodies)
            urls = [
                f"{base}/p/{page_id}?round={round_number}&copy={n}"
                for n in range(COPIES)
                for page_id in pages
            ]
            cpu_before, wall_before = tree_cpu_seconds(process.pid), time.perf_counter()
            rate, articles, failed = await service_batch(producer, consumer, topics, urls, log)
            service_cores = (tree_cpu_seconds(process.pid) - cpu_before) / (
                time.perf_counter() - wall_before
            )
            print(
                f"round {round_number + 1}: bare loop {bare:.1f} articles/s "
                f"(on {bare_cores:.2f} cores); service {rate:.1f} entries/s "
                f"({articles} articles, {failed} dead letters; on {service_cores:.2f} cores); "
                f"ratio {rate / bare:.2f}x"
            )
            results.append((bare, rate))
        return results
    finally:
        process.terminate()
        await asyncio.to_thread(process.wait, 60)
        await consumer.stop()
        await producer.stop()
        await runner.cleanup()


async def service_batch(
    producer: Any, consumer: Any, topics: TopicNames, urls: list[str], log: Path
) -> tuple[float, int, int]:
    """Entries/s from the first entry produced to the last result consumed."""
    started = time.perf_counter()
    for url in urls:
        entry = {
            "schema": "feed_entry.v1",
            "entry_id": url,
            "feed_url": url.rsplit("/p/", 1)[0] + "/feed.xml",
            "url": url,
            "title": "",
            "first_seen": "2026-11-23T00:00:00Z",
        }
        await producer.send(topics.entries, json.dumps(entry).encode(), key=url.encode())
    await producer.flush()
    wanted = {url.encode() for url in urls}
    seen: dict[str, set[bytes]] = {topics.articles: set(), topics.failed_articles: set()}
    deadline = time.monotonic() + 600
    while sum(map(len, seen.values())) < len(urls) and time.monotonic() < deadline:
        for records in (await consumer.getmany(timeout_ms=100)).values():
            for record in records:
                if record.key in wanted:
                    seen[record.topic].add(record.key)
    elapsed = time.perf_counter() - started
    done = sum(map(len, seen.values()))
    if done < len(urls):
        raise SystemExit(f"only {done} of {len(urls)} entries came out; see {log}")
    return len(urls) / elapsed, len(seen[topics.articles]), len(seen[topics.failed_articles])


def main() -> int:
    loaded = load_pages(eval_dir() / "extraction")
    pages = {page_id: body for page_id, body, _ in loaded}
    print(
        f"{len(pages) * COPIES} entries a round ({len(pages)} benchmark pages x {COPIES}), "
        f"{ROUNDS} rounds, {os.cpu_count()} CPUs (shared: figures are noisy, ratios count)"
    )
    bare_loop(list(pages.values())[:10])  # imports and caches are not part of the baseline
    with (
        tempfile.TemporaryDirectory() as tmp,
        EmbeddedBroker(storage="memory", log_path=Path(tmp) / "tansu.log") as broker,
    ):
        results = asyncio.run(measure(broker.bootstrap_servers, pages, Path(tmp) / "extractor.log"))
    bare = statistics.median(b for b, _ in results)
    service = statistics.median(r for _, r in results)
    ratio = statistics.median(r / b for b, r in results)
    print(f"bare single-process trafilatura loop (median): {bare:.1f} articles/s")
    print(f"extractor service via broker + HTTP (median):  {service:.1f} entries/s")
    print(f"ratio service / bare (median of rounds): {ratio:.2f}x (target >= {TARGET_RATIO}, > 1)")
    ok = ratio >= TARGET_RATIO and ratio > 1.0
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
