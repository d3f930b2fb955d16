"""`make bench-poller`: 1,000 feeds on a local HTTP server, polled into the embedded broker.

Figures: polls per second and CPU seconds per 1,000 polls (the poller's process only: the feed
server runs in a child process), for a first round (every entry new, all emitted), steady rounds
(200 with unchanged bodies: fetched, parsed, nothing emitted) and 304 rounds (validators
honoured); resident memory after every round. Baseline, measured in the same run: bare
``feedparser.parse`` over the same 1,000 bodies (no HTTP, no Kafka), CPU seconds per 1,000.

All feeds live on one local host, so the per-host spacing (1 s by default) is set to 0 and the
per-host concurrency to the global limit: otherwise the benchmark would measure the politeness
delay, not the poller.
"""

from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing
import socket
import sys
import time
from pathlib import Path

import feedparser
from aiohttp import web
from prometheus_client import CollectorRegistry

from bench.evaldata import eval_dir
from services.common.http import FetchSettings
from services.common.kafka import make_producer
from services.common.settings import KafkaSettings, TopicNames
from services.common.topics import TopicSpec, ensure_topics
from services.poller.app import Poller, PollerMetrics, PollResult
from services.poller.feedlist import FeedSpec
from services.poller.settings import PollerSettings
from services.poller.state import state_topic_spec
from wirewatch_tools.broker import EmbeddedBroker, wait_for_port

FEEDS = 1000
STEADY_ROUNDS = 5
NOT_MODIFIED_ROUNDS = 3
CONCURRENCY = 32


def load_bodies() -> list[bytes]:
    feeds_dir = eval_dir() / "feeds"
    records = [json.loads(line) for line in (feeds_dir / "news_feeds.jsonl").open()]
    return [(feeds_dir / r["path"]).read_bytes() for r in records if r["n_entries"] > 0]


def serve(port: int, bodies: list[bytes]) -> None:
    """Child process: /feed/<n>.xml is body n % len(bodies); honours If-None-Match in 304 mode."""
    mode = {"honour_validators": False}

    async def feed(request: web.Request) -> web.Response:
        number = int(request.match_info["n"])
        etag = f'"{number}"'
        if mode["honour_validators"] and request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        body = bodies[number % len(bodies)]
        return web.Response(body=body, headers={"Content-Type": "application/xml", "ETag": etag})

    async def set_mode(request: web.Request) -> web.Response:
        mode["honour_validators"] = request.query.get("honour") == "1"
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/feed/{n}.xml", feed)
    app.router.add_get("/mode", set_mode)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def set_mode(poller: Poller, base: str, honour: bool) -> None:
    async with poller.session.get(f"{base}/mode?honour={int(honour)}") as response:
        await response.read()


async def timed_round(poller: Poller) -> tuple[float, float, list[PollResult]]:
    wall, cpu = time.perf_counter(), time.process_time()
    results = await poller.poll_round()
    return time.perf_counter() - wall, time.process_time() - cpu, results


async def run(bootstrap: str, base: str) -> None:
    kafka = KafkaSettings(bootstrap_servers=bootstrap)
    topic = "bench.entries"
    await ensure_topics(
        kafka,
        [TopicSpec(topic, 4), TopicSpec(TopicNames.dlq(topic), 1), state_topic_spec("bench.state")],
    )
    settings = PollerSettings(
        feeds=Path("unused.yaml"),
        kafka=kafka,
        topics=TopicNames(entries=topic),
        state_topic="bench.state",
    )
    fetch_settings = FetchSettings(
        allowed_networks="127.0.0.1/32",
        global_concurrency=CONCURRENCY,
        per_host_concurrency=CONCURRENCY,
        min_host_interval_seconds=0.0,
    )
    feeds = [FeedSpec(url=f"{base}/feed/{n}.xml", name=f"feed-{n}") for n in range(FEEDS)]
    producer = make_producer(kafka)
    await producer.start()
    poller = Poller(
        feeds,
        settings=settings,
        fetch_settings=fetch_settings,
        producer=producer,
        metrics=PollerMetrics(CollectorRegistry()),
    )
    await poller.start()
    rows = []
    try:
        wall, cpu, results = await timed_round(poller)
        emitted = sum(r.emitted for r in results)
        rows.append(("first (all new)", wall, cpu, results, emitted, rss_mb()))
        for n in range(STEADY_ROUNDS):
            wall, cpu, results = await timed_round(poller)
            emitted = sum(r.emitted for r in results)
            rows.append((f"steady 200 #{n + 1}", wall, cpu, results, emitted, rss_mb()))
        await set_mode(poller, base, honour=True)
        for n in range(NOT_MODIFIED_ROUNDS):
            wall, cpu, results = await timed_round(poller)
            emitted = sum(r.emitted for r in results)
            rows.append((f"304 #{n + 1}", wall, cpu, results, emitted, rss_mb()))
    finally:
        await poller.close()
        await producer.stop()

    bodies = load_bodies()
    same_bodies = [bodies[n % len(bodies)] for n in range(FEEDS)]
    cpu = time.process_time()
    wall = time.perf_counter()
    for body in same_bodies:
        feedparser.parse(body, response_headers={"content-type": "application/xml"})
    base_cpu, base_wall = time.process_time() - cpu, time.perf_counter() - wall

    print(f"poller benchmark: {FEEDS} feeds on one local server, concurrency {CONCURRENCY}")
    print(f"{'round':18} {'polls/s':>8} {'CPU s/1k polls':>15} {'emitted':>8} {'RSS MB':>7}")
    for label, wall, cpu_s, results, emitted, rss in rows:
        outcomes = sorted({r.outcome for r in results})
        print(
            f"{label:18} {len(results) / wall:8.0f} {cpu_s * 1000 / len(results):15.2f} "
            f"{emitted:8d} {rss:7.1f}  outcomes={','.join(outcomes)}"
        )
    steady = [row for row in rows if row[0].startswith("steady")]
    steady_cpu = sum(row[2] for row in steady) * 1000 / sum(len(row[3]) for row in steady)
    print(
        f"baseline: bare feedparser.parse of the same {FEEDS} bodies: "
        f"{base_cpu * 1000 / FEEDS:.2f} CPU s per 1k parses ({FEEDS / base_wall:.0f} parses/s)"
    )
    print(
        f"ratio: steady poll (fetch + parse + dedup against the seen state) costs "
        f"{steady_cpu / (base_cpu * 1000 / FEEDS):.2f}x the bare parse in CPU"
    )
    later = [row[5] for row in rows[1:]]
    print(
        f"memory: RSS after round 2 {later[0]:.1f} MB, after the last round {later[-1]:.1f} MB "
        f"(change {later[-1] - later[0]:+.1f} MB over {len(later) - 1} rounds)"
    )


def main() -> int:
    # One warning per malformed feed per round would bury the figures.
    logging.getLogger("services").setLevel(logging.ERROR)
    bodies = load_bodies()
    port = free_port()
    server = multiprocessing.get_context("spawn").Process(
        target=serve, args=(port, bodies), daemon=True
    )
    server.start()
    try:
        wait_for_port(port, timeout=20, process=None)
        with EmbeddedBroker(storage="memory") as broker:
            asyncio.run(run(broker.bootstrap_servers, f"http://127.0.0.1:{port}"))
    finally:
        server.terminate()
        server.join(5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
