"""A real Prometheus server (Debian ``prometheus``) for integration tests, on 127.0.0.1.

It runs the shipped ``deploy/prometheus/prometheus.yml`` and alert rules, with one change: the DNS
discovery of the compose network becomes static targets on 127.0.0.1 that carry the same
``__meta_dns_name`` label, so the shipped relabelling (the ``service`` label) is what is tested.
Scrape and evaluation intervals drop to one second so that tests see rates within seconds.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import yaml

from wirewatch_tools.broker import free_port

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"


def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        pytest.fail("prometheus not installed: `make test` installs the Debian package")
    return found


def local_config(targets: Mapping[str, str], *, interval: str = "1s") -> dict[str, Any]:
    """The shipped configuration, scraping ``{service: "127.0.0.1:port"}`` instead of DNS names."""
    config: dict[str, Any] = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    config["global"].update(
        scrape_interval=interval, scrape_timeout=interval, evaluation_interval=interval
    )
    config["rule_files"] = [str(PROMETHEUS_DIR / name) for name in config["rule_files"]]
    [job] = [job for job in config["scrape_configs"] if job["job_name"] == "wirewatch"]
    discovered = {name for sd in job.pop("dns_sd_configs") for name in sd["names"]}
    unknown = set(targets) - discovered
    if unknown:
        raise ValueError(f"the shipped config does not scrape {sorted(unknown)}")
    job["static_configs"] = [
        {"targets": [address], "labels": {"__meta_dns_name": service}}
        for service, address in targets.items()
    ]
    return config


class PrometheusServer:
    """One Prometheus process with its own data directory; query it through the HTTP API."""

    def __init__(self, config: dict[str, Any], workdir: Path) -> None:
        self.config = config
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "prometheus.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, timeout: float = 30) -> None:
        config_path = self.workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    prometheus_binary(),
                    f"--config.file={config_path}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    f"--storage.tsdb.path={self.workdir / 'data'}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=2) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"prometheus exited: {self.log_path.read_text()[-2000:]}")
                try:
                    if (await client.get(f"{self.url}/-/ready")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError(f"prometheus not ready after {timeout}s: {self.log_tail()}")

    def log_tail(self) -> str:
        return self.log_path.read_text()[-2000:] if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    async def api(self, path: str, **params: str) -> Any:
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.get(f"{self.url}/api/v1/{path}", params=params)
        body = response.json()
        if body.get("status") != "success":
            raise AssertionError(f"{path} {params}: {body}")
        return body["data"]

    async def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query; the result vector (``[{"metric": {...}, "value": [t, "v"]}]``)."""
        data = await self.api("query", query=expr)
        result: list[dict[str, Any]] = data["result"]
        return result

    async def value(self, expr: str) -> float | None:
        """The single value of a query that yields one series, or None while it yields none."""
        result = await self.query(expr)
        if not result:
            return None
        if len(result) > 1:
            raise AssertionError(f"{expr} yields {len(result)} series: {result}")
        return float(result[0]["value"][1])

    async def wait_for(
        self,
        expr: str,
        accept: Callable[[float], bool],
        *,
        timeout: float,
        what: str = "",
    ) -> float:
        """Poll ``expr`` until its value passes ``accept``; fail with the last value seen."""
        deadline = time.monotonic() + timeout
        last: float | None = None
        while time.monotonic() < deadline:
            last = await self.value(expr)
            if last is not None and accept(last):
                return last
            await asyncio.sleep(0.5)
        raise AssertionError(f"{what or expr}: last value {last} after {timeout}s")


StartPrometheus = Callable[..., Awaitable[PrometheusServer]]
"""What the ``prometheus`` fixture gives: ``await start(targets, **options)``."""


@pytest_asyncio.fixture
async def prometheus(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[StartPrometheus]:
    """Call ``await prometheus({"extractor": "127.0.0.1:PORT", ...})`` for a started server."""
    servers: list[PrometheusServer] = []

    async def start(targets: Mapping[str, str], **options: Any) -> PrometheusServer:
        server = PrometheusServer(
            local_config(targets, **options), tmp_path_factory.mktemp("prometheus")
        )
        servers.append(server)
        await server.start()
        return server

    yield start
    for server in servers:
        server.stop()
