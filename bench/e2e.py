"""`make bench-e2e` (and `make soak`): the whole pipeline, feeds in, events out, on Tansu.

A child process serves ``FEEDS`` RSS feeds and the 181 pages of scrapinghub's
article-extraction-benchmark on 127.0.0.1. Entries point at the pages as published (a distinct
story each), as syndicated copies (the same page under another URL) and as trimmed copies
(every third paragraph cut), so dedup sees both copies and distinct stories. The feed server
releases each entry at a planned instant: a feed lists the entries released so far, so the
poller (polling every feed each ``POLL_SECONDS``) finds them as a real feed's new items.

The four services run as separate processes, as deployed (``python -m services.<name>``):

1. *maximum load*: a batch of entries released at once; throughput is the batch divided by
   the time from its release until the last article left the coder (coded or dead-lettered);
   the coder's ``articles_coded_total`` is read from its ``/metrics`` every ``TICK`` seconds,
   because articles without a diplomatic event emit nothing to observe.
2. *baseline*: a bare ``trafilatura.extract`` loop in this process over the bodies of that
   same batch, right after it; the ratio is pipeline throughput over this loop's. Both are
   repeated ``MAX_ROUNDS`` times, alternating, and the medians are the figures (the machine's
   cores are shared, so single rounds are noisy).
3. *50 % and 90 %* of the measured maximum: entries released at that steady rate for
   ``PHASE_SECONDS``. Latency is entry → event: the broker timestamp of each
   ``events.diplomatic`` record (the coder's producer stamps it when sending) minus the
   ``wirewatch-first-seen`` header it carries (when the poller first saw the entry behind it;
   the header travels with the article through every stage). Entry → dedup result is also
   given for every article, because most articles code to no event.

Peak RSS is sampled from ``/proc`` every ``TICK`` seconds per service process tree (the
extractor's worker processes included). ``--soak`` keeps 50 % load for
``WIREWATCH_SOAK_SECONDS`` (default 1,800) and checks that RSS and the backlog do not grow.

``--replicas N`` (``make bench-e2e-replicas``: N = 2) measures the maximum load only, twice in
one run on the same cores: first with one process of every service (the baseline), then on a
fresh broker with N replicas of the extractor and of the coder. On two cores more replicas
cannot add throughput (one replica of each already keeps both cores busy: their worker pools
default to one process a core); what the comparison shows is what running them costs beyond
their own work: articles/s and CPU milliseconds per article, each stage's replicas summed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from bisect import bisect_right
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any, TypeVar
from xml.sax.saxutils import escape

import aiohttp
from aiohttp import web
from aiokafka import AIOKafkaConsumer
from prometheus_client.parser import text_string_to_metric_families

from bench.evaldata import eval_dir
from bench.extract import bare_loop
from bench.extract_quality import load_pages
from bench.processes import process_table, tree_cpu_seconds, tree_rss_mb, wait_ready
from services.common.kafka import FIRST_SEEN_HEADER, make_consumer, make_producer
from services.common.settings import KafkaSettings, TopicNames
from services.common.topics import TopicSpec, ensure_topics, pipeline_topics
from wirewatch_tools.broker import EmbeddedBroker, free_port, wait_for_port

T = TypeVar("T")
SERVICES = ("poller", "extractor", "dedup", "coder")
REPLICATED = ("extractor", "coder")
FEEDS = 24
POLL_SECONDS = 1.0
FEED_WINDOW = 60  # entries a feed lists: its latest releases, like a real feed's last items
TICK = 0.25
WARM_UP_ENTRIES = 24
PHASE_SECONDS = float(os.environ.get("BENCH_E2E_PHASE_SECONDS", "60"))
SOAK_SECONDS = float(os.environ.get("WIREWATCH_SOAK_SECONDS", "1800"))
PHASE_TIMEOUT = 900.0
MAX_ROUNDS = int(os.environ.get("BENCH_E2E_MAX_ROUNDS", "3"))
# The benchmark pages were published over two decades and dedup evicts articles older than
# its window behind the newest one: with the 72 h default an original would be gone before its
# copy came. The benchmark keeps them all; the soak keeps a short window so that the window's
# size (and its memory) reaches a steady state during the warm-up.
BENCH_WINDOW_HOURS = 30 * 365 * 24.0
SOAK_WINDOW_HOURS = float(os.environ.get("WIREWATCH_SOAK_WINDOW_HOURS", "0.05"))
# Tansu 0.6 spends CPU in proportion to a partition's length on every fetch that returns records
# (memory and S3 engines alike; about 1 ms per 1,000 records of a 4-partition topic, measured
# by `make bench-broker-fetch`)
# and cannot trim a topic (no DeleteRecords). Over a soak's 30 minutes the topics grow and the
# broker would starve the services of the two cores, so the soak's consumers fetch less often.
SOAK_FETCH_MAX_WAIT_MS = int(os.environ.get("WIREWATCH_SOAK_FETCH_MAX_WAIT_MS", "500"))
# The benchmark's own reader of seven topics: latencies come from broker timestamps, so a
# longer wait only notices a finished phase up to this late (which understates throughput).
FOLLOW_FETCH_MAX_WAIT_MS = 500
TARGET_RATIO = 0.7
TARGET_P95_AT_HALF = 2.0
TARGET_RSS_GROWTH = 0.10
_INDEX = re.compile(r"[?&]k=(\d+)")
_PARAGRAPH = re.compile(rb"<p[\s>].*?</p>", re.DOTALL | re.IGNORECASE)


@dataclass(frozen=True)
class PlannedEntry:
    """One feed item: which page, in which form, in which feed, released when (epoch s)."""

    index: int
    page_id: str
    variant: str
    release_at: float

    @property
    def feed(self) -> int:
        return self.index % FEEDS


def story_cycle(page_ids: list[str]) -> list[tuple[str, str]]:
    """Every page once; every third also syndicated, every fifth also trimmed, right after it."""
    cycle = []
    for number, page_id in enumerate(page_ids):
        cycle.append((page_id, "original"))
        if number % 3 == 0:
            cycle.append((page_id, "syndicated"))
        if number % 5 == 0:
            cycle.append((page_id, "trimmed"))
    return cycle


def variant_body(body: bytes, variant: str) -> bytes:
    """The page as that outlet serves it; ``trimmed`` drops every third ``<p>`` element."""
    if variant != "trimmed":
        return body
    count = 0

    def every_third(match: re.Match[bytes]) -> bytes:
        nonlocal count
        count += 1
        return b"" if count % 3 == 0 else match.group(0)

    return _PARAGRAPH.sub(every_third, body)


def plan(cycle: list[tuple[str, str]], first: int, releases: list[float]) -> list[PlannedEntry]:
    """Entries ``first``, ``first + 1``… (continuing the cycle), one per release instant."""
    return [
        PlannedEntry(first + n, *cycle[(first + n) % len(cycle)], release_at=moment)
        for n, moment in enumerate(releases)
    ]


def serve(port: int, pages: dict[str, bytes]) -> None:
    """Child process: the feeds (``/feed/<n>.xml``), the pages and ``POST /schedule``."""
    bodies = {
        (page_id, variant): variant_body(body, variant)
        for page_id, body in pages.items()
        for variant in ("original", "syndicated", "trimmed")
    }
    feeds: list[list[tuple[float, dict[str, Any]]]] = [[] for _ in range(FEEDS)]

    async def schedule(request: web.Request) -> web.Response:
        for item in await request.json():
            feeds[item["index"] % FEEDS].append((item["release_at"], item))
        for items in feeds:
            items.sort(key=lambda pair: pair[0])
        return web.Response(text="ok")

    async def feed(request: web.Request) -> web.Response:
        number = int(request.match_info["n"])
        items = feeds[number]
        released = bisect_right([moment for moment, _ in items], time.time())
        etag = f'"{number}-{released}"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        base = f"http://{request.host}"
        xml_items = []
        for moment, item in reversed(items[max(0, released - FEED_WINDOW) : released]):
            url = escape(f"{base}/p/{item['page_id']}/{item['variant']}?k={item['index']}")
            xml_items.append(
                f"<item><title>story {item['index']}</title><link>{url}</link>"
                f"<guid>{url}</guid><pubDate>{formatdate(moment, usegmt=True)}</pubDate></item>"
            )
        body = (
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>bench feed {number}</title><link>{base}/</link>"
            f"<description>wirewatch e2e bench</description>{''.join(xml_items)}"
            "</channel></rss>"
        )
        return web.Response(text=body, content_type="application/rss+xml", headers={"ETag": etag})

    async def page(request: web.Request) -> web.Response:
        key = (request.match_info["page"], request.match_info["variant"])
        return web.Response(body=bodies[key], content_type="text/html")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/schedule", schedule)
    app.router.add_get("/feed/{n}.xml", feed)
    app.router.add_get("/p/{page}/{variant}", page)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (no interpolation: every figure is a measured latency)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))]


@dataclass
class Tracker:
    """What came out of the pipeline, read from its topics as it happens (by entry index)."""

    entries_first_seen: dict[int, float] = field(default_factory=dict)
    done: dict[int, str] = field(default_factory=dict)  # outcome: dedup outcome or dead letter
    dedup_latency: dict[int, float] = field(default_factory=dict)
    # Broker timestamps of each entry's message at every stage, for the breakdown by stage.
    stamps: dict[str, dict[int, float]] = field(default_factory=dict)
    events: list[tuple[float, float]] = field(default_factory=list)  # (first_seen, emitted)
    deduplicated: int = 0

    def record(self, topics: TopicNames, record: Any) -> None:
        headers = dict(record.headers or [])
        first_seen_raw = headers.get(FIRST_SEEN_HEADER)
        first_seen = float(first_seen_raw) if first_seen_raw else None
        emitted = record.timestamp / 1000
        if record.topic == topics.events:
            if first_seen is not None and record.value is not None:
                self.events.append((first_seen, emitted))
            return
        value = record.value or b""
        if record.topic == topics.entries:
            index = _entry_index(_json_string(value, "url"))
            if index is not None and first_seen is not None:
                self.entries_first_seen.setdefault(index, first_seen)
                self.stamps.setdefault("entry", {}).setdefault(index, emitted)
        elif record.topic == topics.articles:
            index = _entry_index(_json_string(value, "url"))
            if index is not None:
                self.stamps.setdefault("article", {}).setdefault(index, emitted)
        elif record.topic == topics.deduplicated:
            index = _entry_index(_json_string(value, "url"))
            if index is not None and index not in self.done:
                self.stamps.setdefault("dedup", {}).setdefault(index, emitted)
                self.deduplicated += 1
                self.done[index] = _json_string(value, "outcome") or "?"
                if first_seen is not None:
                    self.dedup_latency[index] = emitted - first_seen
        else:  # a dead letter: the key is the entry's or article's canonical URL
            index = _entry_index((record.key or b"").decode(errors="replace"))
            if index is not None:
                self.done.setdefault(index, f"dead letter ({record.topic})")


def _json_string(value: bytes, name: str) -> str | None:
    """The first string field ``name`` in a JSON message, without decoding the whole message.

    The benchmark reads every article twice (extracted and deduplicated), and decoding each
    whole text would take CPU from the pipeline it measures. The services write compact JSON
    and no other field of theirs is named ``url`` or ``outcome``.
    """
    match = re.search(rb'"' + name.encode() + rb'":\s*"([^"\\]*)"', value)
    return match.group(1).decode() if match else None


def _entry_index(url: str | None) -> int | None:
    match = _INDEX.search(url or "")
    return int(match.group(1)) if match else None


@dataclass
class Service:
    name: str  # the replica's: coder, coder-2
    process: subprocess.Popen[bytes]
    metrics_port: int
    peak_rss_mb: float = 0.0
    rss_series: list[tuple[float, float]] = field(default_factory=list)

    @property
    def stage(self) -> str:
        return self.name.split("-")[0]


@dataclass
class PhaseResult:
    name: str
    entries: int
    seconds: float
    throughput: float
    event_latencies: list[float]
    dedup_latencies: list[float]
    dead_letters: int
    cores: float
    stages: dict[str, float]
    cpu_by_part: dict[str, float] = field(default_factory=dict)

    def cpu_line(self) -> str:
        """CPU milliseconds per entry in each process tree: where the pipeline's cost lies."""
        return ", ".join(
            f"{part} {1000 * seconds / self.entries:.0f}"
            for part, seconds in self.cpu_by_part.items()
        )

    def latency_line(self) -> str:
        events = self.event_latencies
        articles = self.dedup_latencies
        return (
            f"entry->event p50 {percentile(events, 0.5):.2f}s p95 {percentile(events, 0.95):.2f}s "
            f"p99 {percentile(events, 0.99):.2f}s ({len(events)} events); "
            f"entry->dedup p50 {percentile(articles, 0.5):.2f}s "
            f"p95 {percentile(articles, 0.95):.2f}s p99 {percentile(articles, 0.99):.2f}s "
            f"({len(articles)} articles)"
        )

    def stages_line(self) -> str:
        return ", ".join(f"{name} {seconds:.2f}s" for name, seconds in self.stages.items())


class Bench:
    """The running pipeline, the feed server and what is read from them."""

    def __init__(
        self, bootstrap: str, base: str, services: list[Service], pids: dict[str, int]
    ) -> None:
        self.kafka = KafkaSettings(bootstrap_servers=bootstrap)
        self.topics = TopicNames()
        self.base = base
        self.services = services
        self.pids = pids  # every process the pipeline's CPU is counted over, by name
        self.tracker = Tracker()
        self.coder_done = 0.0
        self.session: aiohttp.ClientSession | None = None
        self.consumer: AIOKafkaConsumer | None = None
        self.next_index = 0

    def bulk_topics(self) -> set[str]:
        """The topics every entry passes through (the dead-letter topics are the others)."""
        topics = self.topics
        return {topics.entries, topics.articles, topics.deduplicated, topics.events}

    def quiet(self, on: bool) -> None:
        """Stop (or resume) reading the bulk topics, so a maximum round measures the pipeline
        rather than the benchmark's own reading, which took CPU on the same two cores (its
        process used about 1.4 ms an article), plus the broker's work to serve it."""
        if self.consumer is None:
            return
        partitions = [p for p in self.consumer.assignment() if p.topic in self.bulk_topics()]
        if on:
            self.consumer.pause(*partitions)
        else:
            self.consumer.resume(*partitions)

    async def follow(self) -> None:
        topics = self.topics
        consumer = make_consumer(
            self.kafka,
            topics.entries,
            topics.articles,
            topics.deduplicated,
            topics.events,
            topics.failed_articles,
            TopicNames.dlq(topics.entries),
            TopicNames.dlq(topics.articles),
            group_id=None,
            fetch_max_wait_ms=FOLLOW_FETCH_MAX_WAIT_MS,
        )
        await consumer.start()
        self.consumer = consumer
        try:
            while True:
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    for record in records:
                        self.tracker.record(topics, record)
        finally:
            await consumer.stop()

    async def sample(self) -> None:
        """Coder progress and RSS every ``TICK``; RSS series kept at one sample a second."""
        coders = [s for s in self.services if s.stage == "coder"]
        assert self.session is not None
        last_series = 0.0
        done = {coder.name: 0.0 for coder in coders}
        while True:
            for coder in coders:
                try:
                    url = f"http://127.0.0.1:{coder.metrics_port}/metrics"
                    async with self.session.get(url) as reply:
                        done[coder.name] = coder_finished(await reply.text())
                except aiohttp.ClientError:
                    pass
            self.coder_done = sum(done.values())
            now, children = time.time(), process_table()
            for service in self.services:
                rss = tree_rss_mb(service.process.pid, children)
                service.peak_rss_mb = max(service.peak_rss_mb, rss)
                if now - last_series >= 1.0:
                    service.rss_series.append((now, rss))
            if now - last_series >= 1.0:
                last_series = now
            await asyncio.sleep(TICK)

    async def release(self, entries: list[PlannedEntry]) -> None:
        assert self.session is not None
        payload = [
            {
                "index": e.index,
                "page_id": e.page_id,
                "variant": e.variant,
                "release_at": e.release_at,
            }
            for e in entries
        ]
        async with self.session.post(f"{self.base}/schedule", json=payload) as reply:
            reply.raise_for_status()

    def finished(self, entries: list[PlannedEntry]) -> bool:
        done = self.tracker.done
        return all(e.index in done for e in entries) and (
            self.coder_done >= self.tracker.deduplicated
        )

    def coded_since(self, entries: list[PlannedEntry], coder_done_before: float) -> bool:
        """Every entry not dead-lettered on the way is out of the coder, by its metrics."""
        done = self.tracker.done
        dead = sum(1 for e in entries if done.get(e.index, "").startswith("dead letter"))
        return self.coder_done - coder_done_before >= len(entries) - dead

    async def wait_until(
        self, name: str, entries: list[PlannedEntry], deadline: float, out: Callable[[], bool]
    ) -> None:
        while not out():
            if time.monotonic() > deadline:
                missing = sum(1 for e in entries if e.index not in self.tracker.done)
                raise SystemExit(f"{name}: {missing} of {len(entries)} entries never came out")
            self.check_alive()
            await asyncio.sleep(TICK)

    def cpu_by_part(self) -> dict[str, float]:
        children = process_table()
        return {name: tree_cpu_seconds(pid, children) for name, pid in self.pids.items()}

    async def run_phase(
        self, name: str, cycle: list[tuple[str, str]], releases: list[float], *, quiet: bool = False
    ) -> tuple[PhaseResult, list[PlannedEntry]]:
        """Release entries at ``releases`` and wait until all are out of the pipeline.

        ``quiet``: the end is told from the coder's metrics and the dead-letter topics alone,
        and the bulk topics are read only after it (their broker timestamps are unchanged).
        """
        entries = plan(cycle, self.next_index, releases)
        self.next_index += len(entries)
        started, cpu, coder_done_before = time.time(), self.cpu_by_part(), self.coder_done
        self.quiet(quiet)
        await self.release(entries)
        deadline = time.monotonic() + PHASE_TIMEOUT + (releases[-1] - started)

        def all_out() -> bool:
            return self.finished(entries)

        def coded() -> bool:
            return self.coded_since(entries, coder_done_before)

        await self.wait_until(name, entries, deadline, coded if quiet else all_out)
        ended, cpu_after = time.time(), self.cpu_by_part()
        self.quiet(False)
        await self.wait_until(name, entries, deadline, all_out)
        first, last = entries[0].release_at, entries[-1].release_at
        indexes = {e.index for e in entries}
        result = PhaseResult(
            name=name,
            entries=len(entries),
            seconds=ended - first,
            throughput=len(entries) / (ended - first),
            event_latencies=[
                emitted - seen
                for seen, emitted in self.tracker.events
                if first - 0.5 <= seen <= last + POLL_SECONDS + 0.5
            ],
            dedup_latencies=[
                latency for i, latency in self.tracker.dedup_latency.items() if i in indexes
            ],
            dead_letters=sum(1 for i in indexes if self.tracker.done[i].startswith("dead letter")),
            cores=(sum(cpu_after.values()) - sum(cpu.values())) / (ended - started),
            cpu_by_part={part: seconds - cpu[part] for part, seconds in cpu_after.items()},
            stages=self.stage_medians(indexes),
        )
        return result, entries

    def stage_medians(self, indexes: set[int]) -> dict[str, float]:
        """Median time each stage added, from consecutive broker timestamps of one entry."""
        stamps = {"first seen": self.tracker.entries_first_seen, **self.tracker.stamps}
        names = {
            ("first seen", "entry"): "poller send",
            ("entry", "article"): "extractor",
            ("article", "dedup"): "dedup",
        }
        medians = {}
        for (before, after), name in names.items():
            spans = [
                stamps[after][i] - stamps[before][i]
                for i in indexes
                if i in stamps.get(before, {}) and i in stamps.get(after, {})
            ]
            medians[name] = statistics.median(spans) if spans else float("nan")
        return medians

    def check_alive(self) -> None:
        for service in self.services:
            if service.process.poll() is not None:
                raise SystemExit(f"{service.name} exited with {service.process.returncode}")

    def backlog(self) -> int:
        """Entries the poller has emitted that have not come out of the coder yet."""
        tracker = self.tracker
        dead = sum(1 for outcome in tracker.done.values() if outcome.startswith("dead letter"))
        coded = min(self.coder_done, tracker.deduplicated)
        return max(0, len(tracker.entries_first_seen) - dead - int(coded))


def coder_finished(metrics_text: str) -> float:
    """Articles the coder is done with: coded, or sent to its dead-letter topic."""
    total = 0.0
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name in (
                "wirewatch_coder_articles_coded_total",
                "wirewatch_coder_dead_letters_total",
            ):
                total += sample.value
    return total


def start_services(
    bootstrap: str,
    base: str,
    workdir: Path,
    *,
    dedup_window_hours: float,
    fetch_max_wait_ms: int | None = None,
    replicas: int = 1,
) -> list[Service]:
    """Every service as its own process; ``replicas`` of the extractor and of the coder."""
    feeds_file = workdir / "feeds.yaml"
    feeds_file.write_text(
        "feeds:\n"
        + "".join(f"  - url: {base}/feed/{n}.xml\n    name: bench-{n}\n" for n in range(FEEDS))
    )
    env = dict(
        os.environ,
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        WIREWATCH_POLLER_FEEDS=str(feeds_file),
        WIREWATCH_POLLER_MIN_INTERVAL_SECONDS=str(POLL_SECONDS),
        WIREWATCH_POLLER_MAX_INTERVAL_SECONDS=str(POLL_SECONDS),
        WIREWATCH_FETCH_ALLOWED_NETWORKS="127.0.0.1/32",
        # Every feed and page lives on one local host: no politeness spacing in a benchmark.
        WIREWATCH_FETCH_MIN_HOST_INTERVAL_SECONDS="0",
        WIREWATCH_FETCH_PER_HOST_CONCURRENCY="32",
        WIREWATCH_DEDUP_WINDOW_HOURS=str(dedup_window_hours),
    )
    if fetch_max_wait_ms is not None:
        env["KAFKA_FETCH_MAX_WAIT_MS"] = str(fetch_max_wait_ms)
    services = []
    for stage in SERVICES:
        for replica in range(1, (replicas if stage in REPLICATED else 1) + 1):
            name = stage if replica == 1 else f"{stage}-{replica}"
            port = free_port()
            own = {
                f"WIREWATCH_{stage.upper()}_METRICS_PORT": str(port),
                # As a second pod would: a data directory of its own.
                "WIREWATCH_FAUST_DATADIR": str(workdir / name / "faust"),
                "WIREWATCH_CODER_DATA_DIR": str(workdir / name / "coder"),
            }
            with (workdir / f"{name}.log").open("wb") as log:
                process = subprocess.Popen(
                    [sys.executable, "-m", f"services.{stage}"],
                    env=dict(env, **own),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    # Each in its own session, as deployed services run apart from one another.
                    start_new_session=True,
                )
            services.append(Service(name, process, port))
    return services


def stop_services(services: list[Service]) -> None:
    for service in services:
        if service.process.poll() is None:
            service.process.terminate()
    for service in services:
        try:
            service.process.wait(30)
        except subprocess.TimeoutExpired:
            service.process.kill()
            service.process.wait()


def steady_releases(start: float, rate: float, seconds: float) -> list[float]:
    return [start + n / rate for n in range(max(1, round(rate * seconds)))]


@contextlib.asynccontextmanager
async def followed(bench: Bench) -> AsyncIterator[None]:
    """The bench's HTTP session, with its event follower and CPU sampler running meanwhile."""
    bench.session = aiohttp.ClientSession()
    follower = asyncio.create_task(bench.follow())
    sampler = asyncio.create_task(bench.sample())
    try:
        yield
    finally:
        follower.cancel()
        sampler.cancel()
        await asyncio.gather(follower, sampler, return_exceptions=True)
        await bench.session.close()


async def warm_up_and_measure(
    bench: Bench, pages: dict[str, bytes], cycle: list[tuple[str, str]]
) -> list[tuple[float, float, PhaseResult]]:
    """The warm-up, then ``MAX_ROUNDS`` rounds of ``measure_maximum``."""
    warm, _ = await bench.run_phase("warm-up", cycle, [time.time()] * WARM_UP_ENTRIES)
    print(f"warm-up: {warm.entries} entries through in {warm.seconds:.1f}s")
    return [await measure_maximum(bench, pages, cycle, n) for n in range(1, MAX_ROUNDS + 1)]


async def run(
    bench: Bench, pages: dict[str, bytes], cycle: list[tuple[str, str]], soak: bool
) -> bool:
    async with followed(bench):
        rounds = await warm_up_and_measure(bench, pages, cycle)
        maximum = statistics.median(rate for rate, _, _ in rounds)
        ratio = statistics.median(r for _, r, _ in rounds)
        print(
            f"maximum (median of {MAX_ROUNDS} rounds): {maximum:.2f} articles/s; ratio pipeline / "
            f"bare loop (median of rounds): {ratio:.3f} (target >= {TARGET_RATIO})"
        )
        if soak:
            return await run_soak(bench, cycle, maximum * 0.5)
        results = {}
        for fraction in (0.5, 0.9):
            rate = maximum * fraction
            releases = steady_releases(time.time() + 1, rate, PHASE_SECONDS)
            result, _ = await bench.run_phase(f"{fraction:.0%}", cycle, releases)
            results[fraction] = result
            print(
                f"{fraction:.0%} load ({rate:.2f} entries/s for {PHASE_SECONDS:.0f}s, "
                f"{result.entries} entries): {result.latency_line()}; all out after "
                f"{result.seconds:.1f}s ({result.dead_letters} dead letters; pipeline on "
                f"{result.cores:.2f} cores)"
            )
            print(f"  median time added by stage: {result.stages_line()}")
        print_rss(bench)
        await print_work_times(bench)
        faust_wait = await fetch_wait_delay(bench.kafka, 1500)
        aiokafka_wait = await fetch_wait_delay(bench.kafka, 500)
        short_wait = await fetch_wait_delay(bench.kafka, 100)
        print(
            "record acknowledged -> delivered to a consumer already waiting on the broker, "
            f"4 partitions (median): {faust_wait:.2f}s with Faust's fetch_max_wait 1500 ms, "
            f"{aiokafka_wait:.2f}s with aiokafka's default 500 ms, {short_wait:.2f}s with 100 ms"
        )
        p95 = percentile(results[0.5].event_latencies, 0.95)
        ok = ratio >= TARGET_RATIO and p95 < TARGET_P95_AT_HALF
        print(
            f"targets: ratio {ratio:.3f} >= {TARGET_RATIO}: "
            f"{'met' if ratio >= TARGET_RATIO else 'MISSED'}; p95 entry->event at 50% "
            f"{p95:.2f}s < {TARGET_P95_AT_HALF}s: {'met' if p95 < TARGET_P95_AT_HALF else 'MISSED'}"
        )
        return ok


async def measure_maximum(
    bench: Bench, pages: dict[str, bytes], cycle: list[tuple[str, str]], round_number: int
) -> tuple[float, float, PhaseResult]:
    """One round: a cycle of entries released at once, then the bare loop over their bodies.

    Returns the pipeline's articles/s and its ratio to the bare loop's. Rounds after the first
    bring the same pages again under new URLs, so dedup finds them copies of earlier rounds.
    """
    peak, entries = await bench.run_phase("maximum", cycle, [time.time()] * len(cycle), quiet=True)
    outcomes: dict[str, int] = {}
    for entry in entries:
        outcome = bench.tracker.done[entry.index]
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    bodies = [variant_body(pages[e.page_id], e.variant) for e in entries]
    bare, bare_cores = await asyncio.to_thread(bare_loop, bodies)
    print(
        f"round {round_number}: {peak.entries} entries released at once, all out of the coder "
        f"in {peak.seconds:.1f}s: {peak.throughput:.2f} articles/s (pipeline on "
        f"{peak.cores:.2f} cores; {dict(sorted(outcomes.items()))}); bare trafilatura.extract "
        f"loop over the same bodies {bare:.2f} articles/s (on {bare_cores:.2f} cores); "
        f"ratio {peak.throughput / bare:.2f}"
    )
    # The machine is shared, so the CPU each side got is part of the result.
    print(
        f"  per CPU-second: pipeline {peak.throughput / peak.cores:.1f} articles (all its "
        f"processes, broker and feed server included), bare loop {bare / bare_cores:.1f}; "
        f"median time added by stage: {peak.stages_line()}"
    )
    print(f"  CPU ms per article: {peak.cpu_line()}; bare loop {1000 * bare_cores / bare:.0f}")
    return peak.throughput, peak.throughput / bare, peak


async def fetch_wait_delay(kafka: KafkaSettings, wait_ms: int, samples: int = 8) -> float:
    """Median delay from a record's acknowledgement to a waiting consumer receiving it.

    Explains the hops' latency: a consumer whose fetch is already waiting at the broker gets a
    new record when the broker answers that fetch, and on a topic of several partitions (the
    pipeline's have 4) Tansu 0.6 answers only when the fetch's maximum wait is over (on a
    one-partition topic it answers at once). Faust's aiokafka driver fixes that wait at
    1,500 ms; the services' own aiokafka consumers keep aiokafka's 500 ms.
    """
    topic = f"bench-fetch-wait-{wait_ms}"
    await ensure_topics(kafka, [TopicSpec(topic, 4)])  # as the pipeline topics
    producer = make_producer(kafka)
    consumer = make_consumer(kafka, topic, group_id=None, fetch_max_wait_ms=wait_ms)
    await producer.start()
    await consumer.start()
    delays = []
    try:
        await producer.send_and_wait(topic, b"first")
        await consumer.getone()
        for _ in range(samples):
            await asyncio.sleep(0.37)  # lands at a varying point of the waiting fetch
            await producer.send_and_wait(topic, b"x")
            acknowledged = time.perf_counter()
            await consumer.getone()
            delays.append(time.perf_counter() - acknowledged)
    finally:
        await consumer.stop()
        await producer.stop()
    return statistics.median(delays)


async def print_work_times(bench: Bench) -> None:
    """Mean of every ``*_duration_seconds`` histogram the services export: their own work."""
    assert bench.session is not None
    figures = []
    for service in bench.services:
        url = f"http://127.0.0.1:{service.metrics_port}/metrics"
        async with bench.session.get(url) as reply:
            text = await reply.text()
        for family in text_string_to_metric_families(text):
            if family.type != "histogram" or not family.name.endswith("_duration_seconds"):
                continue
            total = sum(s.value for s in family.samples if s.name.endswith("_sum"))
            count = sum(s.value for s in family.samples if s.name.endswith("_count"))
            if count:
                figures.append(f"{family.name} {1000 * total / count:.0f} ms ({count:.0f})")
    print("mean work per item, from the services' histograms:")
    for figure in figures:
        print(f"  {figure}")


def print_rss(bench: Bench) -> None:
    figures = ", ".join(f"{s.name} {s.peak_rss_mb:.0f} MB" for s in bench.services)
    print(f"peak RSS (process and its children): {figures}")


async def run_soak(bench: Bench, cycle: list[tuple[str, str]], rate: float) -> bool:
    """``SOAK_SECONDS`` at ``rate``; RSS and backlog compared after a warm-up sixth."""
    started = time.time()
    releases = steady_releases(started + 1, rate, SOAK_SECONDS)
    print(
        f"soak: {rate:.2f} entries/s for {SOAK_SECONDS:.0f}s ({len(releases)} entries); "
        f"consumers fetch every {SOAK_FETCH_MAX_WAIT_MS} ms at most"
    )
    backlog: list[tuple[float, int]] = []
    phase = asyncio.create_task(bench.run_phase("soak", cycle, releases))
    cpu_before, minute_started = bench.cpu_by_part(), time.time()
    while not phase.done():
        backlog.append((time.time(), bench.backlog()))
        if len(backlog) % 60 == 0:
            cpu_now, now = bench.cpu_by_part(), time.time()
            cores = ", ".join(
                f"{part} {(cpu_now[part] - cpu_before[part]) / (now - minute_started):.2f}"
                for part in cpu_now
            )
            cpu_before, minute_started = cpu_now, now
            rss = ", ".join(f"{s.name} {s.rss_series[-1][1]:.0f}" for s in bench.services)
            print(f"  t+{now - started:5.0f}s backlog {backlog[-1][1]:4d}  RSS MB {rss}")
            print(f"           cores used in the last minute: {cores}")
        await asyncio.sleep(1.0)
    result, _ = phase.result()
    print(f"soak: {result.latency_line()}; {result.dead_letters} dead letters")
    warm_end = started + SOAK_SECONDS / 6
    end = started + SOAK_SECONDS
    ok = True
    for service in bench.services:
        after_warm = [rss for t, rss in service.rss_series if warm_end <= t <= warm_end + 60]
        at_end = [rss for t, rss in service.rss_series if end - 60 <= t <= end]
        growth = statistics.median(at_end) / statistics.median(after_warm) - 1
        ok &= growth < TARGET_RSS_GROWTH
        print(
            f"  {service.name}: RSS {statistics.median(after_warm):.0f} MB after warm-up, "
            f"{statistics.median(at_end):.0f} MB at the end: {growth:+.1%} "
            f"(target < {TARGET_RSS_GROWTH:.0%})"
        )
    quarter = (end - warm_end) / 4
    early = [n for t, n in backlog if warm_end <= t <= warm_end + quarter]
    late = [n for t, n in backlog if end - quarter <= t <= end]
    # Two seconds of arrivals: the latency target, so a backlog within it is not growth.
    allowed = statistics.median(early) + max(10.0, 2 * rate)
    lag_ok = statistics.median(late) <= allowed
    ok &= lag_ok
    print(
        f"  backlog (entries emitted, not yet out of the coder): median "
        f"{statistics.median(early):.0f} after warm-up, "
        f"{statistics.median(late):.0f} in the last quarter "
        f"(allowed <= {allowed:.0f}): {'no growth' if lag_ok else 'GROWING'}"
    )
    print_rss(bench)
    return ok


@dataclass(frozen=True)
class MaximumFigures:
    """The maximum-load rounds of one pipeline: medians over the rounds."""

    replicas: int
    throughput: float
    ratio: float
    cores: float
    cpu_ms_by_stage: dict[str, float]

    def line(self) -> str:
        cpu = ", ".join(f"{stage} {ms:.0f}" for stage, ms in self.cpu_ms_by_stage.items())
        return (
            f"{self.throughput:.2f} articles/s on {self.cores:.2f} cores (ratio to the bare "
            f"loop {self.ratio:.2f}); CPU ms per article: {cpu}, total "
            f"{sum(self.cpu_ms_by_stage.values()):.0f}"
        )


async def run_maximum(
    bench: Bench, pages: dict[str, bytes], cycle: list[tuple[str, str]], replicas: int
) -> MaximumFigures:
    """Warm-up and ``MAX_ROUNDS`` maximum rounds; CPU summed over each stage's replicas."""
    async with followed(bench):
        rounds = await warm_up_and_measure(bench, pages, cycle)
    by_stage: dict[str, list[float]] = {}
    for _, _, peak in rounds:
        summed: dict[str, float] = {}
        for part, seconds in peak.cpu_by_part.items():
            stage = part.split("-")[0] if part.split("-")[0] in SERVICES else part
            summed[stage] = summed.get(stage, 0.0) + 1000 * seconds / peak.entries
        for stage, ms in summed.items():
            by_stage.setdefault(stage, []).append(ms)
    return MaximumFigures(
        replicas=replicas,
        throughput=statistics.median(rate for rate, _, _ in rounds),
        ratio=statistics.median(ratio for _, ratio, _ in rounds),
        cores=statistics.median(peak.cores for _, _, peak in rounds),
        cpu_ms_by_stage={stage: statistics.median(ms) for stage, ms in by_stage.items()},
    )


def with_pipeline(
    pages: dict[str, bytes],
    workdir: Path,
    work: Callable[[Bench], Coroutine[Any, Any, T]],
    *,
    soak: bool = False,
    replicas: int = 1,
) -> T:
    """Feed server, a fresh broker and the services; ``work`` runs on them, then all stop."""
    workdir.mkdir(parents=True, exist_ok=True)
    server_port = free_port()
    server = multiprocessing.get_context("spawn").Process(
        target=serve, args=(server_port, pages), daemon=True
    )
    server.start()
    services: list[Service] = []
    try:
        with EmbeddedBroker(storage="memory", log_path=workdir / "tansu.log") as broker:
            wait_for_port(server_port, timeout=30, process=None)
            base = f"http://127.0.0.1:{server_port}"
            asyncio.run(
                ensure_topics(
                    KafkaSettings(bootstrap_servers=broker.bootstrap_servers),
                    pipeline_topics(TopicNames()),
                )
            )
            services = start_services(
                broker.bootstrap_servers,
                base,
                workdir,
                dedup_window_hours=SOAK_WINDOW_HOURS if soak else BENCH_WINDOW_HOURS,
                fetch_max_wait_ms=SOAK_FETCH_MAX_WAIT_MS if soak else None,
                replicas=replicas,
            )
            try:
                for service in services:
                    wait_ready(service.name, service.metrics_port, service.process, 180)
                assert broker.process is not None and server.pid is not None
                pids = {s.name: s.process.pid for s in services}
                pids.update(broker=broker.process.pid, feed_server=server.pid)
                bench = Bench(broker.bootstrap_servers, base, services, pids)
                return asyncio.run(work(bench))
            finally:
                stop_services(services)  # while the broker is still there to drain into
    finally:
        stop_services(services)
        server.terminate()
        server.join(10)


def compare_replicas(
    pages: dict[str, bytes], cycle: list[tuple[str, str]], workdir: Path, replicas: int
) -> bool:
    """The maximum with one process a service, then with ``replicas`` extractors and coders."""
    figures = []
    for count in (1, replicas):
        print(f"--- {count} extractor and {count} coder process(es), one poller, one dedup ---")

        async def work(bench: Bench, count: int = count) -> MaximumFigures:
            return await run_maximum(bench, pages, cycle, count)

        figures.append(with_pipeline(pages, workdir / f"replicas-{count}", work, replicas=count))
    one, many = figures
    print(f"baseline, 1 replica: {one.line()}")
    print(f"{replicas} replicas: {many.line()}")
    extra = sum(many.cpu_ms_by_stage.values()) / sum(one.cpu_ms_by_stage.values()) - 1
    print(
        f"{replicas} replicas / 1: throughput x{many.throughput / one.throughput:.2f}, "
        f"CPU per article {extra:+.1%} (the {replicas - 1} extra replica(s) of each cost this "
        "beyond the work itself)"
    )
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--soak", action="store_true", help="hold 50%% load for the soak time")
    parser.add_argument(
        "--replicas",
        type=int,
        default=None,
        help="compare the maximum with 1 and with this many extractor and coder replicas",
    )
    args = parser.parse_args()
    loaded = load_pages(eval_dir() / "extraction")
    pages = {page_id: body for page_id, body, _ in loaded}
    cycle = story_cycle(sorted(pages))
    print(
        f"{len(pages)} pages as {len(cycle)} feed entries a cycle ({FEEDS} feeds polled every "
        f"{POLL_SECONDS:.0f}s), {os.cpu_count()} CPUs shared with other jobs"
    )
    bare_loop(list(pages.values())[:10])  # imports and caches are not part of the baseline
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(os.environ.get("BENCH_E2E_LOG_DIR") or tmp)
        try:
            if args.replicas is not None:
                ok = compare_replicas(pages, cycle, workdir, args.replicas)
            else:
                ok = with_pipeline(
                    pages,
                    workdir,
                    lambda bench: run(bench, pages, cycle, args.soak),
                    soak=args.soak,
                )
        finally:
            print(f"service logs: {workdir} (kept only with BENCH_E2E_LOG_DIR)")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
