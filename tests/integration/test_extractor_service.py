"""The extractor service on the real embedded broker, fetching from a real HTTP server.

The page server listens on 127.0.0.2 and the allow-list holds exactly ``127.0.0.2/32``: every
other private, loopback or link-local address is refused as with an empty allow-list, so a
redirect to 127.0.0.1 (where the test's own broker lives) must be refused too. Article pages
are real pages from scrapinghub/article-extraction-benchmark (MIT) in ``shared/eval``.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from services.common import schemas
from services.common.http import FetchSettings
from services.common.kafka import (
    FIRST_SEEN_HEADER,
    TRACE_HEADER,
    header_value,
    make_consumer,
    make_producer,
)
from services.common.metrics import bound_port
from services.common.settings import KafkaSettings, TopicNames
from services.common.shutdown import GracefulStop
from services.common.topics import ensure_topics, pipeline_topics
from services.extractor.app import ExtractorSettings, run_extractor
from services.extractor.extract import ExtractedPage, extract_page

ORIGIN = "127.0.0.2"
MAX_BYTES = 1_000_000
ARTICLE_PAGES = ("042bb7b5", "04a6711c", "05844573")


class PageServer:
    """Real pages plus every way a page can fail, on 127.0.0.2."""

    def __init__(self, pages: dict[str, bytes]) -> None:
        self.pages = pages
        self.flaky_calls: dict[str, int] = {}
        self.base = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/article/{name}", self.article)
        app.router.add_get("/status/{code}", self.status)
        app.router.add_get("/slow", self.slow)
        app.router.add_get("/plain", self.plain)
        app.router.add_get("/endless", self.endless)
        app.router.add_get("/declared-huge", self.declared_huge)
        app.router.add_get("/empty", self.empty)
        app.router.add_get("/redirect", self.redirect)
        app.router.add_get("/flaky/{name}", self.flaky)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, ORIGIN, 0)
        await site.start()
        self.base = f"http://{ORIGIN}:{bound_port(site)}"
        return self.base

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def article(self, request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.query.get("delay", "0")))
        body = self.pages[request.match_info["name"]]
        return web.Response(body=body, content_type="text/html", charset="utf-8")

    async def status(self, request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), text="no")

    async def slow(self, _: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(text="<html></html>", content_type="text/html")

    async def plain(self, _: web.Request) -> web.Response:
        return web.Response(text="just text, not a page", content_type="text/plain")

    async def endless(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/html"})
        await response.prepare(request)
        chunk = b"<p>" + b"x" * 16_000 + b"</p>"
        try:
            while True:  # never ends: only the client's cap stops it
                await response.write(chunk)
        except (ConnectionError, RuntimeError):
            return response

    async def declared_huge(self, _: web.Request) -> web.Response:
        return web.Response(body=b"<html>" + b" " * (MAX_BYTES * 2), content_type="text/html")

    async def empty(self, _: web.Request) -> web.Response:
        return web.Response(
            text="<html><head><title>t</title></head><body></body></html>",
            content_type="text/html",
        )

    async def redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    async def flaky(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.flaky_calls[name] = self.flaky_calls.get(name, 0) + 1
        if self.flaky_calls[name] == 1:
            return web.Response(status=503, text="try again", headers={"Retry-After": "0"})
        return web.Response(body=self.pages[name], content_type="text/html", charset="utf-8")


class Collector:
    """Reads every output topic from the beginning and indexes messages by key."""

    def __init__(self, kafka: KafkaSettings, topics: list[str]) -> None:
        self.consumer = make_consumer(kafka, *topics, group_id=None)
        self.by_topic: dict[str, dict[bytes, list[Any]]] = {topic: {} for topic in topics}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.consumer.start()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            for records in (await self.consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    self.by_topic[record.topic].setdefault(record.key, []).append(record)

    async def wait_for(self, topic: str, key: str, timeout: float = 45) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.by_topic[topic].get(key.encode())
            if found:
                return found[0]
            await asyncio.sleep(0.05)
        raise AssertionError(f"nothing with key {key} on {topic} within {timeout}s")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self.consumer.stop()


def load_pages(eval_dir: Path) -> dict[str, bytes]:
    pages = {}
    for prefix in ARTICLE_PAGES:
        [path] = (eval_dir / "extraction" / "html").glob(f"{prefix}*.html.gz")
        pages[prefix] = gzip.decompress(path.read_bytes())
    return pages


@pytest.fixture(scope="module")
async def pipeline(kafka_settings: KafkaSettings, eval_dir: Path) -> AsyncIterator[Any]:
    """One extractor for the module, with its own topics, group and page server."""
    suffix = uuid.uuid4().hex
    topics = TopicNames(
        entries=f"it-entries-{suffix}",
        articles=f"it-articles-{suffix}",
        deduplicated=f"it-dedup-{suffix}",
        events=f"it-events-{suffix}",
        failed_articles=f"it-articles-dlq-{suffix}",
    )
    await ensure_topics(kafka_settings, pipeline_topics(topics))
    server = PageServer(load_pages(eval_dir))
    await server.start()
    settings = ExtractorSettings(
        kafka=kafka_settings,
        topics=topics,
        group_id=f"it-extractor-{suffix}",
        workers=2,
        retry_base_seconds=0.2,
        max_attempts=2,
        commit_interval_seconds=0.2,
        fetch=FetchSettings(
            allowed_networks=f"{ORIGIN}/32",
            max_bytes=MAX_BYTES,
            read_timeout_seconds=1.0,
            total_timeout_seconds=2.0,
            min_host_interval_seconds=0.0,
            per_host_concurrency=16,
        ),
    )
    stop = GracefulStop()
    registry = CollectorRegistry()
    service = asyncio.create_task(run_extractor(settings, stop=stop, registry=registry))
    producer = make_producer(kafka_settings)
    await producer.start()
    collector = Collector(
        kafka_settings, [topics.articles, topics.failed_articles, TopicNames.dlq(topics.entries)]
    )
    await collector.start()

    class Pipeline:
        base = server.base
        names = topics
        metrics = registry
        server_ = server

        @staticmethod
        async def send_entry(path: str, **extra: Any) -> dict[str, Any]:
            separator = "&" if "?" in path else "?"
            url = f"{server.base}{path}{separator}n={uuid.uuid4().hex[:8]}"  # a key per test
            entry = {
                "schema": "feed_entry.v1",
                "entry_id": uuid.uuid4().hex,
                "feed_url": f"{server.base}/feed.xml",
                "url": url,
                "title": "feed title",
                "first_seen": "2026-11-23T10:00:00.000Z",
                **extra,
            }
            headers = [(FIRST_SEEN_HEADER, b"1795427200.0"), (TRACE_HEADER, b"trace-1")]
            await producer.send_and_wait(
                topics.entries, json.dumps(entry).encode(), key=url.encode(), headers=headers
            )
            return entry

        @staticmethod
        async def send_raw(value: bytes, key: bytes) -> None:
            await producer.send_and_wait(topics.entries, value, key=key)

        collect = collector

    try:
        yield Pipeline
    finally:
        stop.request()
        await asyncio.wait_for(service, 60)
        await collector.stop()
        await producer.stop()
        await server.stop()


async def dead_letter_for(pipeline: Any, path: str) -> dict[str, Any]:
    entry = await pipeline.send_entry(path)
    record = await pipeline.collect.wait_for(pipeline.names.failed_articles, entry["url"])
    letter: dict[str, Any] = json.loads(record.value)
    schemas.validate(schemas.DEAD_LETTER, letter)
    assert json.loads(base64.b64decode(letter["original_b64"])) == entry
    assert header_value(record.headers, FIRST_SEEN_HEADER) == b"1795427200.0"
    return letter


async def test_a_real_page_becomes_a_schema_valid_article_with_first_seen_carried(
    pipeline: Any,
) -> None:
    entry = await pipeline.send_entry("/article/042bb7b5")
    record = await pipeline.collect.wait_for(pipeline.names.articles, entry["url"])
    article = json.loads(record.value)
    schemas.validate(schemas.ARTICLE, article)
    expected = extract_page(pipeline.server_.pages["042bb7b5"])
    assert isinstance(expected, ExtractedPage)
    assert article["text"] == expected.text and article["title"] == expected.title
    assert article["url"] == entry["url"] and article["entry_id"] == entry["entry_id"]
    assert article["first_seen"] == entry["first_seen"]
    assert article["source"] == "Wall Street Journal"
    assert header_value(record.headers, FIRST_SEEN_HEADER) == b"1795427200.0"
    assert header_value(record.headers, TRACE_HEADER) == b"trace-1"
    assert article["timing"]["fetch_seconds"] >= 0 and article["timing"]["extract_seconds"] > 0


async def test_a_503_is_retried_and_the_page_still_becomes_an_article(pipeline: Any) -> None:
    entry = await pipeline.send_entry("/flaky/04a6711c")
    record = await pipeline.collect.wait_for(pipeline.names.articles, entry["url"])
    assert json.loads(record.value)["text"]
    assert pipeline.server_.flaky_calls["04a6711c"] == 2


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/status/404", "http_status"),
        ("/status/500", "http_status"),
        ("/slow", "timeout"),
        ("/plain", "not_html"),
        ("/endless", "too_large"),
        ("/declared-huge", "too_large"),
        ("/empty", "empty_extraction"),
    ],
)
async def test_each_failure_ends_in_the_articles_dlq_with_its_reason(
    pipeline: Any, path: str, reason: str
) -> None:
    letter = await dead_letter_for(pipeline, path)
    assert letter["reason"] == reason, letter
    assert letter["service"] == "extractor" and letter["topic"] == pipeline.names.entries
    assert path in letter["details"]["url"]
    if path in ("/status/500", "/slow"):
        assert letter["attempts"] == 2  # transient: retried up to max_attempts
    if path == "/status/404":
        assert letter["attempts"] == 1 and letter["details"]["status"] == 404


async def test_an_endless_body_is_cut_at_the_cap(pipeline: Any) -> None:
    started = time.monotonic()
    letter = await dead_letter_for(pipeline, "/endless")
    assert letter["reason"] == "too_large"
    assert MAX_BYTES < letter["details"]["read"] <= MAX_BYTES + 64 * 1024
    assert time.monotonic() - started < 20


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:{port}/article/042bb7b5",
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:{port}/article/042bb7b5",
        "http://localhost:{port}/article/042bb7b5",
    ],
)
async def test_redirects_to_private_loopback_and_metadata_addresses_are_refused(
    pipeline: Any, target: str
) -> None:
    port = pipeline.base.rsplit(":", 1)[1]
    letter = await dead_letter_for(pipeline, f"/redirect?to={target.format(port=port)}")
    assert letter["reason"] == "blocked_address", letter
    assert letter["attempts"] == 1


async def test_poison_messages_go_to_the_entries_dlq_and_do_not_stop_the_service(
    pipeline: Any,
) -> None:
    await pipeline.send_raw(b"\xff not json", key=b"poison-1")
    await pipeline.send_raw(json.dumps({"schema": "feed_entry.v1"}).encode(), key=b"poison-2")
    dlq = TopicNames.dlq(pipeline.names.entries)
    first = json.loads((await pipeline.collect.wait_for(dlq, "poison-1")).value)
    second = json.loads((await pipeline.collect.wait_for(dlq, "poison-2")).value)
    assert (first["reason"], second["reason"]) == ("invalid_json", "schema_invalid")
    assert base64.b64decode(first["original_b64"]) == b"\xff not json"
    entry = await pipeline.send_entry("/article/05844573")
    await pipeline.collect.wait_for(pipeline.names.articles, entry["url"])


async def test_metrics_count_articles_fetch_outcomes_and_dead_letters(pipeline: Any) -> None:
    entry = await pipeline.send_entry("/article/05844573?m=1")
    await pipeline.collect.wait_for(pipeline.names.articles, entry["url"])
    await dead_letter_for(pipeline, "/status/410")
    registry = pipeline.metrics
    assert registry.get_sample_value("wirewatch_extractor_articles_emitted_total") >= 1
    assert (
        registry.get_sample_value("wirewatch_extractor_fetch_outcomes_total", {"reason": "ok"}) >= 1
    )
    assert (
        registry.get_sample_value(
            "wirewatch_extractor_dead_letters_total",
            {"topic": pipeline.names.entries, "reason": "http_status"},
        )
        >= 1
    )
    assert registry.get_sample_value("wirewatch_extractor_fetched_bytes_total") > 10_000
    assert registry.get_sample_value("wirewatch_extractor_extraction_duration_seconds_count") >= 1
    assert registry.get_sample_value("wirewatch_extractor_ready") == 1


async def test_consumer_lag_falls_to_zero_once_everything_is_committed(pipeline: Any) -> None:
    entry = await pipeline.send_entry("/article/042bb7b5?lag=1")
    await pipeline.collect.wait_for(pipeline.names.articles, entry["url"])

    def lags() -> list[float]:
        return [
            sample.value
            for metric in pipeline.metrics.collect()
            if metric.name == "wirewatch_extractor_consumer_lag_messages"
            for sample in metric.samples
            if sample.labels["topic"] == pipeline.names.entries
        ]

    deadline = time.monotonic() + 10
    while (not lags() or any(lags())) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert lags() and not any(lags()), lags()
