"""A poisoned ``poller.state`` (not JSON, a wrong shape) against the real broker and HTTP server:
the poller starts, says what it found, and treats the feed as new without sending again what
the entries topic already holds from it."""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from pathlib import Path

import feedparser
import pytest
from aiohttp import web

from services.common.kafka import make_producer
from services.common.settings import KafkaSettings
from services.poller.feedlist import FeedSpec
from tests.integration.poller_helpers import FeedServer, make_rig, read_topic, rss_response

GUARDIAN = "rss-parser/test/input/guardian.rss"

POISON = {
    "invalid-json": b"\xff{ not json",
    "json-list": b"[1, 2, 3]",
    "wrong-shape": json.dumps(
        {
            "version": 1,
            "feed_key": "set below",
            "url": 42,
            "seen": "not a list",
            "consecutive_failures": "many",
        }
    ).encode(),
}


def without_newest(full: bytes, count: int) -> bytes:
    older = full
    for item in re.findall(rb"<item>.*?</item>", full, flags=re.DOTALL)[:count]:
        older = older.replace(item, b"", 1)
    return older


async def poison_state(kafka: KafkaSettings, topic: str, feed_key: str, value: bytes) -> None:
    producer = make_producer(kafka)
    await producer.start()
    try:
        await producer.send_and_wait(
            topic, value.replace(b"set below", feed_key.encode()), key=feed_key.encode()
        )
    finally:
        await producer.stop()


@pytest.mark.parametrize("kind", sorted(POISON))
async def test_poisoned_state_starts_the_feed_afresh_without_resending_what_it_sent(
    kind: str,
    kafka_settings: KafkaSettings,
    unique_topic: str,
    eval_dir: Path,
    feed_server: FeedServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    full = (eval_dir / "feeds" / GUARDIAN).read_bytes()
    versions = [without_newest(full, 5), full]
    etag = '"guardian-v1"'

    async def changing(request: web.Request) -> web.StreamResponse:
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        return rss_response(
            versions[0] if len(feed_server.requests) == 1 else versions[1], ETag=etag
        )

    feed_server.routes["/feed.xml"] = changing
    feed = FeedSpec(url=f"{feed_server.base_url}/feed.xml", name="guardian")
    first = await make_rig(kafka_settings, [feed], topic=unique_topic)
    try:
        [result] = await first.poller.poll_round()
    finally:
        await first.close()
    assert result.emitted == 50
    await poison_state(kafka_settings, first.state_topic, feed.url, POISON[kind])

    caplog.set_level(logging.ERROR, logger="services.poller.app")
    second = await make_rig(kafka_settings, [feed], topic=unique_topic)
    try:
        [after] = await second.poller.poll_round()
    finally:
        await second.close()

    # Treated as new: no validators sent, so the server answered 200 rather than 304 ...
    assert "If-None-Match" not in feed_server.requests[-1].headers
    assert after.outcome == "200"
    # ... and only the five entries never sent went out.
    assert after.emitted == 5
    records = await read_topic(kafka_settings, unique_topic)
    ids = Counter(json.loads(r.value)["entry_id"] for r in records)
    assert len(records) == 55 and max(ids.values()) == 1
    assert set(ids) == {entry.id for entry in feedparser.parse(full).entries}
    [message] = [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()]
    assert "guardian" in message and "50 entries" in message


async def test_poisoned_state_of_a_feed_that_never_sent_anything_sends_all_its_entries(
    kafka_settings: KafkaSettings, unique_topic: str, eval_dir: Path, feed_server: FeedServer
) -> None:
    body = (eval_dir / "feeds" / GUARDIAN).read_bytes()

    async def serve(_: web.Request) -> web.StreamResponse:
        return rss_response(body)

    feed_server.routes["/feed.xml"] = serve
    feed = FeedSpec(url=f"{feed_server.base_url}/feed.xml", name="guardian")
    state_topic = f"{unique_topic}.state"
    rig = await make_rig(kafka_settings, [], topic=unique_topic, state_topic=state_topic)
    await rig.close()  # creates the topics
    await poison_state(kafka_settings, state_topic, feed.url, POISON["invalid-json"])
    rig = await make_rig(kafka_settings, [feed], topic=unique_topic, state_topic=state_topic)
    try:
        [result] = await rig.poller.poll_round()
    finally:
        await rig.close()
    assert (result.outcome, result.emitted) == ("200", 55)
