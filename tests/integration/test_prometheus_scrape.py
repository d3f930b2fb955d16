"""The Prometheus fixture against a real HealthServer: the shipped config scrapes, relabels and
loads the alert rules, and a counter the service increments is seen rising through the API."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from services.common.metrics import HealthServer, ServiceMetrics
from tests.integration.prometheus import StartPrometheus


async def test_shipped_config_scrapes_a_service_and_sees_its_counter_rise(
    prometheus: StartPrometheus,
) -> None:
    registry = CollectorRegistry()
    metrics = ServiceMetrics("extractor", registry=registry)
    server = HealthServer(host="127.0.0.1", port=0, registry=registry)
    port = await server.start()

    async def work() -> None:
        while True:
            metrics.messages_in.labels(topic="feeds.entries").inc()
            await asyncio.sleep(0.1)

    worker = asyncio.create_task(work())
    try:
        prom = await prometheus({"extractor": f"127.0.0.1:{port}"})
        await prom.wait_for(
            'up{job="wirewatch", service="extractor"}', lambda v: v == 1, timeout=20
        )
        expr = 'wirewatch_extractor_messages_in_total{service="extractor", topic="feeds.entries"}'
        first = await prom.wait_for(expr, lambda v: v > 0, timeout=20)
        later = await prom.wait_for(expr, lambda v: v > first, timeout=20)
        assert later > first
        rate = await prom.wait_for(
            f"rate({expr}[5s])", lambda v: v > 0, timeout=20, what="rate of messages in"
        )
        assert 1 < rate < 50  # ~10 a second, scraped every second
    finally:
        worker.cancel()
        await server.stop()


async def test_prometheus_loads_every_shipped_alert_rule_healthy(
    prometheus: StartPrometheus,
) -> None:
    registry = CollectorRegistry()
    ServiceMetrics("coder", registry=registry)
    server = HealthServer(host="127.0.0.1", port=0, registry=registry)
    port = await server.start()
    try:
        prom = await prometheus({"coder": f"127.0.0.1:{port}"})
        deadline = time.monotonic() + 20
        rules: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            groups = (await prom.api("rules"))["groups"]
            rules = [rule for group in groups for rule in group["rules"]]
            if rules and all(rule["health"] != "unknown" for rule in rules):
                break  # every rule evaluated at least once
            await asyncio.sleep(0.5)
        names = {rule["name"] for rule in rules}
        assert {
            "WirewatchServiceDown",
            "WirewatchServiceMissing",
            "WirewatchConsumerLagGrowing",
            "WirewatchDeadLetterRateHigh",
            "WirewatchFeedFailing",
            "WirewatchNoEventsWhileArticlesFlow",
        } <= names
        assert [r["name"] for r in rules if r["health"] != "ok"] == []
        # Three stages have no target here: the missing-service rule sees exactly those.
        await prom.wait_for(
            'count(ALERTS{alertname="WirewatchServiceMissing"})', lambda v: v == 3, timeout=20
        )
        missing = await prom.query('ALERTS{alertname="WirewatchServiceMissing"}')
        assert {m["metric"]["service"] for m in missing} == {"poller", "extractor", "dedup"}
    finally:
        await server.stop()


async def test_every_dashboard_query_is_valid_promql_for_prometheus(
    prometheus: StartPrometheus,
) -> None:
    """Grafana sends these to Prometheus; each must parse and evaluate (``$__rate_interval`` is
    what Grafana substitutes, at least four scrape intervals)."""
    import json

    from tests.integration.prometheus import REPO

    board = json.loads((REPO / "deploy/grafana/dashboards/wirewatch.json").read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    assert len(exprs) > 15
    registry = CollectorRegistry()
    ServiceMetrics("dedup", registry=registry)
    server = HealthServer(host="127.0.0.1", port=0, registry=registry)
    port = await server.start()
    try:
        prom = await prometheus({"dedup": f"127.0.0.1:{port}"})
        with pytest.raises(AssertionError, match="bad_data"):
            await prom.query("sum(rate(wirewatch_dedup_messages_in_total[1m])")
        for expr in exprs:
            await prom.query(expr.replace("$__rate_interval", "1m"))  # raises on a bad query
    finally:
        await server.stop()
