"""A poller started twice on one feed list: the second stands by, polls nothing, and takes over
when the first stops (at once) or is killed (once its lease lapses); every entry is sent once.

Real poller processes on the s3-backed embedded broker and a real HTTP feed server."""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import feedparser
import pytest
from aiohttp import web

from services.common.settings import KafkaSettings, TopicNames
from services.common.topics import TopicSpec, ensure_topics
from services.poller.state import state_topic_spec
from tests.faults.harness import ServiceProcess, counter_total, is_ready
from tests.integration.poller_helpers import FeedServer, read_topic, rss_response
from wirewatch_tools.broker import EmbeddedBroker

GUARDIAN = "rss-parser/test/input/guardian.rss"
LEASE_SECONDS = 4.0
WAIT = 90.0


class Rig:
    """One feed (the Guardian's, its newest items held back until ``publish``) and the topics
    and environment for any number of pollers of it."""

    def __init__(self, kafka: KafkaSettings, server: FeedServer, body: bytes, workdir: Path):
        self.kafka = kafka
        self.server = server
        self.items = re.findall(rb"<item>.*?</item>", body, flags=re.DOTALL)
        self.body = body
        self.hidden = 10
        server.routes["/feed.xml"] = self._serve
        base = f"pollers-{os.urandom(4).hex()}"
        self.entries, self.state = f"{base}-entries", f"{base}-state"
        feeds = workdir / "feeds.yaml"
        feeds.write_text(f"feeds:\n  - url: {server.base_url}/feed.xml\n    name: guardian\n")
        self.workdir = workdir
        self.env = dict(
            os.environ,
            KAFKA_BOOTSTRAP_SERVERS=kafka.bootstrap_servers,
            WIREWATCH_TOPIC_ENTRIES=self.entries,
            WIREWATCH_FETCH_ALLOWED_NETWORKS="127.0.0.1/32",
            WIREWATCH_FETCH_MIN_HOST_INTERVAL_SECONDS="0",
            WIREWATCH_POLLER_FEEDS=str(feeds),
            WIREWATCH_POLLER_STATE_TOPIC=self.state,
            WIREWATCH_POLLER_MIN_INTERVAL_SECONDS="0.5",
            WIREWATCH_POLLER_MAX_INTERVAL_SECONDS="1",
            WIREWATCH_POLLER_LEASE_SECONDS=str(LEASE_SECONDS),
        )
        self.pollers: list[ServiceProcess] = []

    async def _serve(self, _: web.Request) -> web.StreamResponse:
        body = self.body
        for item in self.items[: self.hidden]:
            body = body.replace(item, b"", 1)
        return rss_response(body)

    def publish(self, count: int) -> None:
        self.hidden -= count

    @property
    def published(self) -> int:
        return len(self.items) - self.hidden

    async def create_topics(self) -> None:
        await ensure_topics(
            self.kafka,
            [
                TopicSpec(self.entries, 2),
                TopicSpec(TopicNames.dlq(self.entries), 1),
                state_topic_spec(self.state),
            ],
        )

    def start_poller(self) -> ServiceProcess:
        name = f"poller-{len(self.pollers) + 1}"
        poller = ServiceProcess(name, self.env, self.workdir / f"{name}.log", service="poller")
        poller.start()
        self.pollers.append(poller)
        return poller

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} ---\n{p.log_tail()}" for p in self.pollers)

    async def wait(self, condition: Callable[[], object], what: str) -> None:
        deadline = time.monotonic() + WAIT
        while not await _value(condition()):
            assert time.monotonic() < deadline, f"timed out waiting for {what}\n{self.logs()}"
            await asyncio.sleep(0.2)

    async def entry_ids(self) -> Counter[str]:
        records = await read_topic(self.kafka, self.entries, settle=0.3)
        return Counter(json.loads(r.value)["entry_id"] for r in records)

    async def sent_all_published(self) -> bool:
        return sum((await self.entry_ids()).values()) >= self.published

    def stop(self) -> None:
        for poller in self.pollers:
            poller.stop()


async def _value(result: object) -> object:
    return await result if asyncio.iscoroutine(result) else result


def standing_by(poller: ServiceProcess) -> bool:
    return "standing by" in poller.log_tail(20000)


async def polls(poller: ServiceProcess) -> float:
    return await counter_total(poller, "wirewatch_poller_polls_total")


@pytest.fixture
async def rig(faults_broker: EmbeddedBroker, eval_dir: Path, tmp_path: Path) -> AsyncIterator[Rig]:
    server = FeedServer()
    await server.start()
    kafka = KafkaSettings(bootstrap_servers=faults_broker.bootstrap_servers)
    rig = Rig(kafka, server, (eval_dir / "feeds" / GUARDIAN).read_bytes(), tmp_path)
    await rig.create_topics()
    try:
        yield rig
    finally:
        await asyncio.to_thread(rig.stop)
        await server.stop()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
async def test_a_second_poller_stands_by_and_takes_over_when_the_first_goes(
    how: str, rig: Rig
) -> None:
    first = rig.start_poller()
    await rig.wait(lambda: is_ready(first), "the first poller to hold the lease")
    await rig.wait(rig.sent_all_published, "the first poller's entries")
    second = rig.start_poller()
    await rig.wait(lambda: standing_by(second), "the second poller to stand by")
    rig.publish(5)
    await rig.wait(rig.sent_all_published, "the five new entries")
    # The standby polled nothing while the first held the lease.
    assert not await is_ready(second)
    assert await polls(second) == 0 and await polls(first) > 0

    went = time.monotonic()
    if how == "sigterm":
        assert await asyncio.to_thread(first.stop) == 0
    else:
        await asyncio.to_thread(first.kill)
    await rig.wait(lambda: is_ready(second), "the second poller to take over")
    took = time.monotonic() - went
    rig.publish(5)
    await rig.wait(rig.sent_all_published, "the last five entries")
    await asyncio.sleep(2 * LEASE_SECONDS)  # more polls: any double would show now

    ids = await rig.entry_ids()
    assert sum(ids.values()) == len(rig.items) and max(ids.values()) == 1
    assert set(ids) == {entry.id for entry in feedparser.parse(rig.body).entries}
    assert await polls(second) > 0
    # A stopped poller hands over at once; a killed one's lease must lapse first.
    if how == "sigterm":
        assert took < LEASE_SECONDS, f"took {took:.1f}s"
    else:
        assert took >= LEASE_SECONDS / 2, f"took over after {took:.1f}s: before the lease lapsed"


@pytest.mark.timeout(300)
async def test_pollers_started_together_send_each_entry_once(rig: Rig) -> None:
    pollers = [rig.start_poller() for _ in range(3)]
    await rig.wait(rig.sent_all_published, "the entries")
    await asyncio.sleep(2 * LEASE_SECONDS)
    ready = [p.name for p in pollers if await is_ready(p)]
    assert len(ready) == 1, f"pollers polling: {ready}\n{rig.logs()}"
    assert sum(standing_by(p) for p in pollers) == 2
    ids = await rig.entry_ids()
    assert sum(ids.values()) == rig.published and max(ids.values()) == 1
