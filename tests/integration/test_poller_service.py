"""The poller against real HTTP servers on 127.0.0.1 and the real embedded broker."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import logging
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import feedparser
import pytest
from aiohttp import web

from services.common.kafka import FIRST_SEEN_HEADER, header_value
from services.common.settings import KafkaSettings, TopicNames
from services.common.shutdown import GracefulStop
from services.poller.feedlist import FeedSpec
from tests.integration.poller_helpers import (
    LOCAL_FETCH,
    FeedServer,
    make_rig,
    poll_rounds,
    read_topic,
    rss_response,
)

GUARDIAN = "rss-parser/test/input/guardian.rss"


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def unpacked(body: bytes) -> bytes:
    """A body as the poller parses it: a stray gzip file (no Content-Encoding) is unpacked."""
    return gzip.decompress(body) if body.startswith(b"\x1f\x8b") else body


def linked_entry_count(body: bytes) -> int:
    """feedparser's count of distinct entries (by guid, else link) that carry a link.

    A feed that repeats a guid lists one entry twice; it is emitted once.
    """
    entries = feedparser.parse(unpacked(body)).entries
    return len({entry.get("id") or entry["link"] for entry in entries if entry.get("link")})


async def test_each_news_feed_yields_exactly_feedparsers_entry_count(
    kafka_settings: KafkaSettings,
    unique_topic: str,
    eval_dir: Path,
    serve_directory: Callable[[Path], str],
) -> None:
    feeds_dir = eval_dir / "feeds"
    news = jsonl(feeds_dir / "news_feeds.jsonl")
    base = serve_directory(feeds_dir)
    feeds = [FeedSpec(url=f"{base}/{item['path']}", name=item["path"]) for item in news]
    rig = await make_rig(kafka_settings, feeds, topic=unique_topic)
    try:
        results = await rig.poller.poll_round()
    finally:
        await rig.close()

    records = await read_topic(kafka_settings, unique_topic)
    per_feed = Counter(json.loads(record.value)["feed_url"] for record in records)
    assert len(results) == 25
    for item in news:
        body = (feeds_dir / item["path"]).read_bytes()
        url = f"{base}/{item['path']}"
        assert per_feed[url] == linked_entry_count(body), item["path"]
        if body.startswith(b"\x1f\x8b"):  # raw gzip: feedparser alone finds nothing
            assert item["n_entries"] == 0 and per_feed[url] > 0, item["path"]
        elif all(entry.get("link") for entry in feedparser.parse(body).entries):
            assert per_feed[url] == item["n_entries"], item["path"]
    assert sum(per_feed.values()) == rig.metric("wirewatch_poller_entries_emitted_total")
    for record in records:
        message = json.loads(record.value)
        assert record.key == message["url"].encode()
        assert "utm_" not in message["url"] and "#" not in message["url"]
        seen_header = float(header_value(record.headers, FIRST_SEEN_HEADER) or b"nan")
        first_seen = message["first_seen"]
        from datetime import datetime

        assert seen_header == pytest.approx(
            datetime.fromisoformat(first_seen.replace("Z", "+00:00")).timestamp(), abs=0.001
        )


async def test_second_poll_of_unchanged_feed_sends_validators_gets_304_and_emits_nothing(
    kafka_settings: KafkaSettings, unique_topic: str, eval_dir: Path, feed_server: FeedServer
) -> None:
    body = (eval_dir / "feeds" / GUARDIAN).read_bytes()
    etag, modified = '"guardian-v1"', "Wed, 31 Jan 2018 20:15:15 GMT"

    async def conditional(request: web.Request) -> web.StreamResponse:
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        return rss_response(body, ETag=etag, **{"Last-Modified": modified})

    feed_server.routes["/feed.xml"] = conditional
    feeds = [FeedSpec(url=f"{feed_server.base_url}/feed.xml", name="guardian")]
    rig = await make_rig(kafka_settings, feeds, topic=unique_topic)
    try:
        [first] = await rig.poller.poll_round()
        [second] = await rig.poller.poll_round()
    finally:
        await rig.close()

    assert (first.outcome, first.emitted) == ("200", 55)
    assert (second.outcome, second.emitted) == ("304", 0)
    sent = feed_server.requests[1].headers
    assert sent["If-None-Match"] == etag
    assert sent["If-Modified-Since"] == modified
    assert "wirewatch" in sent["User-Agent"]
    assert len(await read_topic(kafka_settings, unique_topic)) == 55
    assert rig.metric("wirewatch_poller_polls_total", outcome="304") == 1
    # The unchanged 304 changed only the clock fields: no second state record.
    assert len(await read_topic(kafka_settings, rig.state_topic)) == 1


async def test_changed_feed_emits_only_the_new_entries(
    kafka_settings: KafkaSettings, unique_topic: str, eval_dir: Path, feed_server: FeedServer
) -> None:
    full = (eval_dir / "feeds" / GUARDIAN).read_bytes()
    items = re.findall(rb"<item>.*?</item>", full, flags=re.DOTALL)
    older = full
    for item in items[:5]:  # the five newest items are "not published yet"
        older = older.replace(item, b"", 1)
    versions = [older, full]

    async def changing(_: web.Request) -> web.StreamResponse:
        return rss_response(versions[0] if len(feed_server.requests) == 1 else versions[1])

    feed_server.routes["/feed.xml"] = changing
    feeds = [FeedSpec(url=f"{feed_server.base_url}/feed.xml", name="guardian")]
    rig = await make_rig(kafka_settings, feeds, topic=unique_topic)
    try:
        [first] = await rig.poller.poll_round()
        after_first = await read_topic(kafka_settings, unique_topic)
        [second] = await rig.poller.poll_round()
    finally:
        await rig.close()

    assert (first.emitted, second.emitted) == (50, 5)
    new_ids = {entry.id for entry in feedparser.parse(full).entries[:5]}
    ids_first = {json.loads(r.value)["entry_id"] for r in after_first}
    records = await read_topic(kafka_settings, unique_topic)
    ids_all = Counter(json.loads(r.value)["entry_id"] for r in records)
    assert len(ids_first) == 50 and not ids_first & new_ids
    assert set(ids_all) - ids_first == new_ids
    assert len(records) == 55 and max(ids_all.values()) == 1


async def test_a_feed_behind_basic_auth_is_read_and_its_credentials_stay_out_of_the_topic(
    kafka_settings: KafkaSettings,
    unique_topic: str,
    eval_dir: Path,
    feed_server: FeedServer,
) -> None:
    # The real Guardian feed with its links made relative to the feed's own host.
    body = (
        (eval_dir / "feeds" / GUARDIAN)
        .read_bytes()
        .replace(b"<link>https://www.theguardian.com", b"<link>")
    )
    expected_authorization = "Basic " + base64.b64encode(b"alice:s3cret").decode()

    async def protected(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != expected_authorization:
            raise web.HTTPUnauthorized()
        return rss_response(body)

    feed_server.routes["/feed.xml"] = protected
    host = feed_server.base_url.removeprefix("http://")
    feeds = [FeedSpec(url=f"http://alice:s3cret@{host}/feed.xml", name="guardian")]
    [[result]] = await poll_rounds(kafka_settings, feeds, topic=unique_topic)

    assert (result.outcome, result.emitted) == ("200", 55)
    records = await read_topic(kafka_settings, unique_topic)
    messages = [json.loads(record.value) for record in records]
    assert len(messages) == 55
    assert all(m["url"].startswith(f"{feed_server.base_url}/") for m in messages)
    written = b"".join(record.value + (record.key or b"") for record in records)
    assert b"s3cret" not in written and b"alice" not in written


async def test_after_a_restart_nothing_is_emitted_twice(
    kafka_settings: KafkaSettings, unique_topic: str, eval_dir: Path, feed_server: FeedServer
) -> None:
    body = (eval_dir / "feeds" / GUARDIAN).read_bytes()

    async def no_validators(_: web.Request) -> web.StreamResponse:
        return rss_response(body)  # no ETag / Last-Modified: only the seen state can help

    feed_server.routes["/feed.xml"] = no_validators
    feeds = [FeedSpec(url=f"{feed_server.base_url}/feed.xml", name="guardian")]
    [[before]] = await poll_rounds(kafka_settings, feeds, topic=unique_topic)
    [[after]] = await poll_rounds(kafka_settings, feeds, topic=unique_topic)

    assert before.emitted == 55
    assert (after.outcome, after.emitted) == ("200", 0)
    assert len(feed_server.requests) == 2
    assert len(await read_topic(kafka_settings, unique_topic)) == 55


async def test_429_with_retry_after_is_obeyed(
    kafka_settings: KafkaSettings, unique_topic: str, eval_dir: Path, feed_server: FeedServer
) -> None:
    body = (eval_dir / "feeds" / GUARDIAN).read_bytes()

    async def limited(_: web.Request) -> web.StreamResponse:
        if len(feed_server.requests) == 1:
            return web.Response(status=429, headers={"Retry-After": "2"})
        return rss_response(body)

    feed_server.routes["/feed.xml"] = limited
    feeds = [FeedSpec(url=f"{feed_server.base_url}/feed.xml", name="guardian")]
    rig = await make_rig(kafka_settings, feeds, topic=unique_topic, min_interval_seconds=0.1)
    stop = GracefulStop()
    runner = asyncio.create_task(rig.poller.run(stop))
    try:
        for _ in range(100):
            if len(feed_server.requests) >= 2:
                break
            await asyncio.sleep(0.1)
    finally:
        stop.request()
        await runner
        await rig.close()

    assert len(feed_server.requests) >= 2
    gap = feed_server.requests[1].at - feed_server.requests[0].at
    assert gap >= 2.0
    assert rig.metric("wirewatch_poller_polls_total", outcome="429") == 1
    assert rig.metric("wirewatch_poller_polls_total", outcome="200") >= 1


async def test_permanent_redirect_is_followed_and_remembered_across_restarts(
    kafka_settings: KafkaSettings, unique_topic: str, eval_dir: Path, feed_server: FeedServer
) -> None:
    body = (eval_dir / "feeds" / GUARDIAN).read_bytes()

    async def moved(_: web.Request) -> web.StreamResponse:
        raise web.HTTPMovedPermanently("/new-feed.xml")

    async def new_home(_: web.Request) -> web.StreamResponse:
        return rss_response(body)

    feed_server.routes["/old-feed.xml"] = moved
    feed_server.routes["/new-feed.xml"] = new_home
    feeds = [FeedSpec(url=f"{feed_server.base_url}/old-feed.xml", name="guardian")]
    await poll_rounds(kafka_settings, feeds, topic=unique_topic, rounds=2)
    [[after_restart]] = await poll_rounds(kafka_settings, feeds, topic=unique_topic)

    assert feed_server.paths() == [
        "/old-feed.xml",
        "/new-feed.xml",
        "/new-feed.xml",
        "/new-feed.xml",
    ]
    assert after_restart.emitted == 0
    records = await read_topic(kafka_settings, unique_topic)
    assert {json.loads(r.value)["feed_url"] for r in records} == {
        f"{feed_server.base_url}/new-feed.xml"
    }


async def test_410_gone_stops_polling_and_is_reported(
    kafka_settings: KafkaSettings,
    unique_topic: str,
    feed_server: FeedServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def gone(_: web.Request) -> web.StreamResponse:
        return web.Response(status=410)

    feed_server.routes["/gone.xml"] = gone
    feeds = [FeedSpec(url=f"{feed_server.base_url}/gone.xml", name="retired feed")]
    rig = await make_rig(kafka_settings, feeds, topic=unique_topic, min_interval_seconds=0.1)
    stop = GracefulStop()
    with caplog.at_level(logging.ERROR, logger="services.poller.app"):
        runner = asyncio.create_task(rig.poller.run(stop))
        await asyncio.sleep(2.5)
        stop.request()
        await runner
    await rig.close()
    assert await poll_rounds(kafka_settings, feeds, topic=unique_topic) == [[]]

    assert feed_server.paths() == ["/gone.xml"]
    assert rig.metric("wirewatch_poller_polls_total", outcome="410") == 1
    assert rig.metric("wirewatch_poller_feed_consecutive_failures", feed="retired feed") == 1
    assert any(
        "410 Gone" in r.getMessage() and "gone.xml" in r.getMessage() for r in caplog.records
    )


async def test_every_bad_input_is_handled_recoverable_entries_kept_and_bozo_counted(
    kafka_settings: KafkaSettings,
    unique_topic: str,
    eval_dir: Path,
    serve_directory: Callable[[Path], str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    feeds_dir = eval_dir / "feeds"
    bad = jsonl(feeds_dir / "bad_inputs.jsonl")
    base = serve_directory(feeds_dir)
    feeds = [FeedSpec(url=f"{base}/{item['path']}", name=f"bad-{n}") for n, item in enumerate(bad)]
    rig = await make_rig(kafka_settings, feeds, topic=unique_topic)
    with caplog.at_level(logging.WARNING, logger="services.poller.app"):
        try:
            results = await rig.poller.poll_round()
        finally:
            await rig.close()

    assert len(results) == len(bad)
    assert {result.outcome for result in results} == {"200"}
    records = await read_topic(kafka_settings, unique_topic)
    per_feed = Counter(json.loads(record.value)["feed_url"] for record in records)
    dead = await read_topic(kafka_settings, TopicNames.dlq(unique_topic))
    assert {json.loads(r.value)["reason"] for r in dead} <= {"entry_without_link"}
    messages = [record.getMessage() for record in caplog.records]
    for item, result in zip(bad, results, strict=True):
        body = (feeds_dir / item["path"]).read_bytes()
        url = f"{base}/{item['path']}"
        assert per_feed[url] == linked_entry_count(body), item["path"]
        assert result.emitted + result.dead_lettered >= min(1, item["n_entries"]), item["path"]
        if body.startswith(b"\x1f\x8b"):
            assert any("gzip-compressed" in m and url in m for m in messages), item["path"]
            assert result.emitted > 0, item["path"]
        elif item["bozo"]:
            assert any("malformed" in m and url in m for m in messages), item["path"]
    bozo_total = sum(
        sample.value
        for metric in rig.registry.collect()
        if metric.name == "wirewatch_poller_bozo_feeds"
        for sample in metric.samples
        if sample.name.endswith("_total")
    )
    gzipped = {
        item["path"] for item in bad if (feeds_dir / item["path"]).read_bytes()[:2] == b"\x1f\x8b"
    }
    assert len(gzipped) == 2
    assert bozo_total >= sum(1 for item in bad if item["bozo"] and item["path"] not in gzipped)
    assert len(dead) == sum(result.dead_lettered for result in results) > 0


async def test_a_feed_that_keeps_failing_is_reported_not_dropped(
    kafka_settings: KafkaSettings,
    unique_topic: str,
    feed_server: FeedServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(_: web.Request) -> web.StreamResponse:
        return web.Response(status=500)

    feed_server.routes["/broken.xml"] = broken
    feeds = [FeedSpec(url=f"{feed_server.base_url}/broken.xml", name="broken feed")]
    rig = await make_rig(kafka_settings, feeds, topic=unique_topic, report_failures_after=3)
    with caplog.at_level(logging.ERROR, logger="services.poller.app"):
        try:
            outcomes = [(await rig.poller.poll_round())[0] for _ in range(4)]
        finally:
            await rig.close()

    assert [o.outcome for o in outcomes] == ["http_5xx"] * 4
    delays = [o.delay or 0.0 for o in outcomes]
    assert delays[-1] > delays[0]
    assert rig.metric("wirewatch_poller_feed_consecutive_failures", feed="broken feed") == 4
    reports = [r.getMessage() for r in caplog.records if "in a row" in r.getMessage()]
    assert len(reports) == 2 and "broken.xml" in reports[0]


async def test_gzip_encoded_feed_is_requested_and_decoded(
    kafka_settings: KafkaSettings, unique_topic: str, eval_dir: Path, feed_server: FeedServer
) -> None:
    body = (eval_dir / "feeds" / GUARDIAN).read_bytes()

    async def gzipped(_: web.Request) -> web.StreamResponse:
        response = rss_response(body)
        response.enable_compression(web.ContentCoding.gzip)
        return response

    feed_server.routes["/feed.xml"] = gzipped
    feeds = [FeedSpec(url=f"{feed_server.base_url}/feed.xml", name="guardian")]
    [[result]] = await poll_rounds(kafka_settings, feeds, topic=unique_topic)

    assert "gzip" in feed_server.requests[0].headers["Accept-Encoding"]
    assert (result.outcome, result.emitted) == ("200", 55)


async def test_feeds_on_one_host_are_spaced_and_limited_per_host(
    kafka_settings: KafkaSettings, unique_topic: str, eval_dir: Path, feed_server: FeedServer
) -> None:
    body = (eval_dir / "feeds" / GUARDIAN).read_bytes()
    in_flight = {"now": 0, "max": 0}

    async def slow(_: web.Request) -> web.StreamResponse:
        in_flight["now"] += 1
        in_flight["max"] = max(in_flight["max"], in_flight["now"])
        await asyncio.sleep(0.3)
        in_flight["now"] -= 1
        return rss_response(body)

    for n in range(4):
        feed_server.routes[f"/feed-{n}.xml"] = slow
    feeds = [
        FeedSpec(url=f"{feed_server.base_url}/feed-{n}.xml", name=f"feed {n}") for n in range(4)
    ]
    polite = LOCAL_FETCH.model_copy(
        update={"per_host_concurrency": 1, "min_host_interval_seconds": 0.5}
    )
    rig = await make_rig(kafka_settings, feeds, topic=unique_topic, fetch_settings=polite)
    try:
        results = await rig.poller.poll_round()
    finally:
        await rig.close()

    starts = sorted(seen.at for seen in feed_server.requests)
    assert [r.outcome for r in results] == ["200"] * 4
    assert in_flight["max"] == 1
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    # Sent 0.5 s apart; arrival times jitter (the first request also opens the connection).
    assert min(gaps) >= 0.35 and starts[-1] - starts[0] >= 1.4, gaps


async def test_a_sample_of_every_suite_and_every_non_feed_go_through_a_real_poll(
    kafka_settings: KafkaSettings,
    unique_topic: str,
    eval_dir: Path,
    serve_directory: Callable[[Path], str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The in-process sweep (tests/unit/test_input_sweep.py) parses all 2,231 files; here every
    dozen of each suite, and every well-formed document that is no feed, are fetched over HTTP
    by the real poller and sent to the broker."""
    feeds_dir = eval_dir / "feeds"
    records = jsonl(feeds_dir / "manifest.jsonl")
    not_feeds = [r for r in records if not r["version"] and not r["bozo"] and not r["n_entries"]]
    suites: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        suites.setdefault(record["suite"], []).append(record)
    # About a dozen files of each of the four suites, spread over the suite's files.
    sample = [r for rows in suites.values() for r in rows[:: max(1, len(rows) // 12)]]
    sample += [r for r in not_feeds if r not in sample]
    assert len(not_feeds) >= 5 and len(suites) == 4
    base = serve_directory(feeds_dir)
    feeds = [FeedSpec(url=f"{base}/{r['path']}", name=f"sweep-{n}") for n, r in enumerate(sample)]
    rig = await make_rig(kafka_settings, feeds, topic=unique_topic)
    with caplog.at_level(logging.WARNING, logger="services.poller.app"):
        try:
            results = await rig.poller.poll_round()
        finally:
            await rig.close()

    records_out = await read_topic(kafka_settings, unique_topic)
    per_feed = Counter(json.loads(record.value)["feed_url"] for record in records_out)
    messages = [record.getMessage() for record in caplog.records]
    assert len(results) == len(sample)
    for feed, record, result in zip(feeds, sample, results, strict=True):
        body = (feeds_dir / record["path"]).read_bytes()
        assert result.outcome == "200", record["path"]
        # Sent or dead-lettered (no http(s) link), each distinct entry once.
        handled = result.emitted + result.dead_lettered
        assert per_feed[feed.url] == result.emitted, record["path"]
        assert linked_entry_count(body) <= handled, record["path"]
        assert handled <= len(feedparser.parse(unpacked(body)).entries), record["path"]
        failures = rig.metric("wirewatch_poller_feed_consecutive_failures", feed=feed.name)
        if record in not_feeds:
            assert failures == 1, record["path"]
            assert any("is not a feed" in m and feed.url in m for m in messages), record["path"]
        elif record["n_entries"]:
            assert failures == 0 and result.emitted + result.dead_lettered > 0, record["path"]
