"""Helpers for the poller's integration tests: a scriptable feed server and topic readers."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from aiokafka import ConsumerRecord, TopicPartition
from prometheus_client import CollectorRegistry

from services.common.http import FetchSettings
from services.common.kafka import make_consumer, make_producer
from services.common.settings import KafkaSettings, TopicNames
from services.common.topics import TopicSpec, ensure_topics
from services.poller.app import Poller, PollerMetrics, PollResult
from services.poller.feedlist import FeedSpec
from services.poller.settings import PollerSettings
from services.poller.state import state_topic_spec

LOCAL_FETCH = FetchSettings(
    allowed_networks="127.0.0.1/32",
    min_host_interval_seconds=0.0,
    per_host_concurrency=8,
    total_timeout_seconds=10.0,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    at: float


@dataclass
class FeedServer:
    """An aiohttp server on 127.0.0.1 whose routes the test sets; it records every request."""

    routes: dict[str, Handler] = field(default_factory=dict)
    requests: list[Seen] = field(default_factory=list)
    base_url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> str:
        async def dispatch(request: web.Request) -> web.StreamResponse:
            self.requests.append(Seen(request.path, dict(request.headers), time.monotonic()))
            handler = self.routes.get(request.path)
            if handler is None:
                raise web.HTTPNotFound()
            return await handler(request)

        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", dispatch)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def paths(self) -> list[str]:
        return [seen.path for seen in self.requests]


def rss_response(body: bytes, **headers: str) -> web.Response:
    return web.Response(body=body, headers={"Content-Type": "application/rss+xml", **headers})


@dataclass
class PollerRig:
    """A Poller wired to the real broker with its own topics and metrics registry."""

    poller: Poller
    registry: CollectorRegistry
    entries_topic: str
    state_topic: str

    async def close(self) -> None:
        await self.poller.close()
        await self.poller.producer.stop()

    def metric(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


async def make_rig(
    kafka: KafkaSettings,
    feeds: list[FeedSpec],
    *,
    topic: str,
    state_topic: str | None = None,
    fetch_settings: FetchSettings = LOCAL_FETCH,
    **overrides: object,
) -> PollerRig:
    state_topic = state_topic or f"{topic}.state"
    await ensure_topics(
        kafka,
        [
            TopicSpec(topic, 2),
            TopicSpec(TopicNames.dlq(topic), 1),
            state_topic_spec(state_topic),
        ],
    )
    options: dict[str, object] = {
        "feeds": Path("unused.yaml"),
        "kafka": kafka,
        "topics": TopicNames(entries=topic),
        "state_topic": state_topic,
        "min_interval_seconds": 0.2,
        "max_interval_seconds": 60.0,
    }
    options.update(overrides)
    settings = PollerSettings(**options)  # type: ignore[arg-type]
    registry = CollectorRegistry()
    producer = make_producer(kafka)
    await producer.start()
    poller = Poller(
        feeds,
        settings=settings,
        fetch_settings=fetch_settings,
        producer=producer,
        metrics=PollerMetrics(registry),
    )
    await poller.start()
    return PollerRig(poller, registry, topic, state_topic)


async def poll_rounds(
    kafka: KafkaSettings, feeds: list[FeedSpec], *, topic: str, rounds: int = 1
) -> list[list[PollResult]]:
    """The results of ``rounds`` poll rounds by a poller started for them and closed after."""
    rig = await make_rig(kafka, feeds, topic=topic)
    try:
        return [await rig.poller.poll_round() for _ in range(rounds)]
    finally:
        await rig.close()


async def read_topic(
    kafka: KafkaSettings, topic: str, *, settle: float = 1.0
) -> list[ConsumerRecord]:
    """Every record now in ``topic`` (all partitions), read from the beginning."""
    consumer = make_consumer(kafka, group_id=None)
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        await consumer.topics()
        partitions = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            positions = {tp: await consumer.position(tp) for tp in partitions}
            if all(positions[tp] >= ends[tp] for tp in partitions):
                break
            for batch in (await consumer.getmany(timeout_ms=int(settle * 1000))).values():
                records.extend(batch)
    finally:
        await consumer.stop()
    return records
