"""End to end: ``wirewatch run`` (embedded broker, demo feed, every service) scraped by a real
Prometheus running the shipped configuration and alert rules. Through Prometheus's HTTP API the
test sees every stage's counters rise from nothing and the end-to-end latency histogram fill."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services import SERVICE_NAMES
from tests.integration.prometheus import REPO, PrometheusServer, StartPrometheus
from tests.unit.test_deploy_metrics import dashboard_exprs, documented_metrics

PIPELINE_TIMEOUT = 240

# What each stage must have counted once the demo feed went through it (the metric contract),
# as (metric, extra label matchers).
STAGE_COUNTERS = {
    "poller": [
        ("wirewatch_poller_messages_out_total", ""),
        ("wirewatch_poller_entries_emitted_total", ""),
        ("wirewatch_poller_polls_total", 'outcome="200"'),
    ],
    "extractor": [
        ("wirewatch_extractor_messages_in_total", ""),
        ("wirewatch_extractor_messages_out_total", ""),
        ("wirewatch_extractor_articles_emitted_total", ""),
        ("wirewatch_extractor_fetched_bytes_total", ""),
    ],
    "dedup": [
        ("wirewatch_dedup_messages_in_total", ""),
        ("wirewatch_dedup_messages_out_total", ""),
        ("wirewatch_dedup_articles_total", ""),
    ],
    "coder": [
        ("wirewatch_coder_messages_in_total", ""),
        ("wirewatch_coder_articles_coded_total", ""),
        ("wirewatch_coder_events_total", ""),
        ("wirewatch_coder_messages_out_total", ""),
    ],
}


async def assert_rose(prom: PrometheusServer, expr: str, up_expr: str, since: float) -> None:
    """``expr`` rose while Prometheus watched the target: it was absent (or lower) at a scrape of
    the target, down or up, and is positive later. Prometheus scraped every target (down) before
    the pipeline started, and a service may start serving /metrics only once it is processing
    (Faust tasks do), so "absent at a scrape of the target" is the honest baseline."""
    now = time.time()
    # Steps are counted from the start: align them so that the last one is now.
    start = now - (int(now - since) + 1)
    window = {"start": f"{start:.3f}", "end": f"{now:.3f}", "step": "1"}
    [series] = (await prom.api("query_range", query=expr, **window))["result"]
    [up] = (await prom.api("query_range", query=up_expr, **window))["result"]
    values = [(float(t), float(v)) for t, v in series["values"]]
    first_scrape = min(float(t) for t, _ in up["values"])
    assert values[-1][1] > 0, expr
    appeared_later = values[0][0] > first_scrape
    assert appeared_later or values[-1][1] > values[0][1], f"{expr} never rose: {values[:3]}"


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port_block(size: int) -> int:
    """The first of ``size`` consecutive free ports (``--metrics-base-port`` takes a block)."""
    for _ in range(200):
        base = random.randrange(20000, 60000 - size)  # noqa: S311 - not security
        if all(_port_is_free(base + i) for i in range(size)):
            return base
    raise RuntimeError(f"no {size} consecutive free ports")


class Pipeline:
    """``wirewatch run`` on free ports, started on demand (after Prometheus, so that Prometheus
    sees the counters before anything has been counted)."""

    def __init__(self, log_path: Path) -> None:
        self.base = free_port_block(len(SERVICE_NAMES))
        self.demo_port = free_port_block(1)
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def targets(self) -> dict[str, str]:
        return {stage: f"127.0.0.1:{self.base + i}" for i, stage in enumerate(SERVICE_NAMES)}

    def start(self) -> None:
        env = dict(os.environ)
        env.pop("KAFKA_BOOTSTRAP_SERVERS", None)  # its own embedded broker, not the session's
        command = [sys.executable, "-m", "wirewatch_tools.cli", "run"]
        command += ["--demo-port", str(self.demo_port), "--metrics-base-port", str(self.base)]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def stop(self) -> None:
        """SIGINT, as Ctrl-C: `wirewatch run` stops its services and broker itself."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[Pipeline]:
    running = Pipeline(tmp_path / "wirewatch-run.log")
    try:
        yield running
        assert running.process is not None and running.process.poll() is None, (
            f"wirewatch run exited early:\n{running.log_tail()}"
        )
    finally:
        running.stop()
        print(running.log_tail())  # noqa: T201 - shown by pytest when the test fails


@pytest.mark.timeout(PIPELINE_TIMEOUT + 120)
async def test_prometheus_sees_every_stage_count_and_the_end_to_end_latency_fill(
    pipeline: Pipeline, prometheus: StartPrometheus
) -> None:
    started = time.time()
    prom: PrometheusServer = await prometheus(pipeline.targets)
    # Prometheus applies new targets after a few seconds: let it scrape them (down) first.
    await prom.wait_for('count(up{job="wirewatch"})', lambda v: v == 4, timeout=30)
    pipeline.start()
    deadline = time.monotonic() + PIPELINE_TIMEOUT

    def remaining() -> float:
        return max(1.0, deadline - time.monotonic())

    for stage in SERVICE_NAMES:
        await prom.wait_for(
            f'up{{job="wirewatch", service="{stage}"}}',
            lambda v: v == 1,
            timeout=remaining(),
            what=f"{stage} scraped",
        )

    # Prometheus scraped every stage before the pipeline started: each counter is seen rising
    # from nothing (absent, or 0) to a positive total.
    for stage, counters in STAGE_COUNTERS.items():
        for metric, matchers in counters:
            selector = ", ".join(m for m in (f'service="{stage}"', matchers) if m)
            expr = f"sum({metric}{{{selector}}})"
            await prom.wait_for(expr, lambda v: v > 0, timeout=remaining(), what=expr)
            await assert_rose(prom, expr, f'up{{service="{stage}"}}', since=started)

    latency_count = await prom.wait_for(
        'sum(wirewatch_pipeline_end_to_end_latency_seconds_count{service="coder"})',
        lambda v: v > 0,
        timeout=remaining(),
        what="end-to-end latency observations",
    )
    latency_sum = await prom.value(
        'sum(wirewatch_pipeline_end_to_end_latency_seconds_sum{service="coder"})'
    )
    assert latency_sum is not None and 0 < latency_sum / latency_count < PIPELINE_TIMEOUT
    emitted = await prom.value('sum(wirewatch_coder_messages_out_total{service="coder"})')
    assert emitted is not None and latency_count <= emitted
    print(  # noqa: T201 - the figures, with -s
        f"end-to-end: {latency_count:.0f} events observed, mean latency "
        f"{latency_sum / latency_count:.1f}s, coder messages out {emitted:.0f}"
    )

    # The dedup ratio and events-by-root panels have data; every dashboard query evaluates.
    assert await prom.query("sum by (cameo_root) (wirewatch_coder_events_total)")
    assert await prom.query("sum by (outcome) (wirewatch_dedup_articles_total)")
    for expr in dashboard_exprs():
        await prom.query(expr.replace("$__rate_interval", "1m"))

    # No availability alert while everything runs.
    assert await prom.query('ALERTS{alertname=~"WirewatchService.*"}') == []

    # Every documented metric is exposed by the stage it belongs to.
    documented = documented_metrics()
    async with httpx.AsyncClient(timeout=10) as client:
        for stage, address in pipeline.targets.items():
            text = (await client.get(f"http://{address}/metrics")).text
            types = dict(
                line.split()[2:4] for line in text.splitlines() if line.startswith("# TYPE ")
            )
            assert "process_resident_memory_bytes" in types, stage
            for name, kind in documented.items():
                if name.startswith(f"wirewatch_{stage}_"):
                    # A counter's TYPE line names it with or without _total (client versions).
                    exposed = types.get(name) or types.get(name.removesuffix("_total"))
                    assert exposed == kind, f"{stage} does not expose {name} ({kind})"
            assert (await client.get(f"http://{address}/readyz")).status_code == 200
            assert (await client.get(f"http://{address}/healthz")).status_code == 200
