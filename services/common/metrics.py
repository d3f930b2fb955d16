"""Prometheus metrics every service shares, and the HTTP server for /metrics and health probes."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

if TYPE_CHECKING:
    from aiokafka import TopicPartition

logger = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900)


class ServiceMetrics:
    """Metrics named ``wirewatch_<service>_<what>_<unit>`` that every service exposes."""

    def __init__(self, service: str, registry: CollectorRegistry = REGISTRY) -> None:
        prefix = f"wirewatch_{service}"
        self.service = service
        self.messages_in = Counter(
            f"{prefix}_messages_in_total", "Messages consumed", ["topic"], registry=registry
        )
        self.messages_out = Counter(
            f"{prefix}_messages_out_total", "Messages produced", ["topic"], registry=registry
        )
        self.dead_letters = Counter(
            f"{prefix}_dead_letters_total",
            "Messages or work items sent to a dead-letter topic",
            ["topic", "reason"],
            registry=registry,
        )
        self.consumer_lag = Gauge(
            f"{prefix}_consumer_lag_messages",
            "End offset minus committed position, per assigned partition",
            ["topic", "partition"],
            registry=registry,
        )
        self.ready = Gauge(
            f"{prefix}_ready", "1 once the service is consuming/polling", registry=registry
        )
        self.started = Gauge(
            f"{prefix}_start_time_seconds", "Unix time the service started", registry=registry
        )
        self.started.set(time.time())
        # (topic, partition) labels of consumer_lag set so far, so that a partition taken away by
        # a rebalance stops reporting the lag it had here.
        self.lag_partitions: set[tuple[str, str]] = set()

    def set_consumer_lag(self, lags: Mapping[TopicPartition, int]) -> None:
        """Set the lag of every partition in ``lags`` and forget the others set before, so a
        partition taken away by a rebalance stops reporting a frozen lag from this replica."""
        current = {(tp.topic, str(tp.partition)) for tp in lags}
        for topic, partition in self.lag_partitions - current:
            self.consumer_lag.remove(topic, partition)
        for tp, lag in lags.items():
            self.consumer_lag.labels(topic=tp.topic, partition=str(tp.partition)).set(lag)
        self.lag_partitions = current


END_TO_END_LATENCY = Histogram(
    "wirewatch_pipeline_end_to_end_latency_seconds",
    "Feed entry first seen to diplomatic event emitted",
    buckets=LATENCY_BUCKETS,
)


def bound_port(site: web.TCPSite) -> int:
    """The port an aiohttp site actually listens on (it differs from the one asked for when 0)."""
    server: Any = site._server
    port: int = server.sockets[0].getsockname()[1]
    return port


class HealthServer:
    """Serves ``/metrics``, ``/healthz`` (process alive) and ``/readyz`` (consuming)."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        is_ready: Callable[[], bool] = lambda: True,
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        self.host = host
        self.port = port
        self.is_ready = is_ready
        self.registry = registry
        self._runner: web.AppRunner | None = None

    async def start(self) -> int:
        """Start serving; returns the bound port (useful when asked for port 0)."""
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = bound_port(site)
        logger.info("metrics on http://%s:%d/metrics", self.host, self.port)
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, _: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, _: web.Request) -> web.Response:
        if self.is_ready():
            return web.Response(text="ready\n")
        return web.Response(status=503, text="not ready\n")
