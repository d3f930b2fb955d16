"""The tools that read or write topics, run with no broker: one line saying what to do, exit 1.

Each command runs as the user runs it (a process of its own), against 127.0.0.1 ports where
nothing listens, or where something listens that is not Kafka.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

COMMANDS = [
    ["tail", "events.diplomatic"],
    ["tail", "events.diplomatic", "--from-beginning", "--max", "1"],
    ["topics"],
    ["replay", "copy", "--topic", "events.diplomatic", "--into", "copy-of-events", "--dry-run"],
    ["replay", "rewind", "--group", "g", "--topic", "events.diplomatic", "--to-earliest"],
    ["replay", "recode", "--dry-run"],
    ["replay", "backfill-feed", "http://127.0.0.1:9/feed.xml", "--dry-run"],
    ["export", "--format", "tsv"],
    ["export", "--topic", "events.diplomatic", "--format", "parquet", "-o", "events.parquet"],
]


def closed_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def not_kafka() -> Iterator[int]:
    """A port where connections are accepted and closed at once: a program that is not Kafka."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except OSError:
                return
            connection.close()

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1]
    stop.set()
    server.close()


def run_wirewatch(args: list[str], bootstrap: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap}
    return subprocess.run(  # noqa: S603 - our own entry point
        [sys.executable, "-m", "wirewatch_tools.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("args", COMMANDS, ids=lambda args: " ".join(args[:2]))
def test_command_without_broker_prints_one_line_with_the_address_and_exits_1(
    args: list[str],
) -> None:
    address = f"127.0.0.1:{closed_port()}"
    result = run_wirewatch(args, address)
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert address in lines[0]
    for hint in ("make run", "wirewatch broker", "KAFKA_BOOTSTRAP_SERVERS"):
        assert hint in lines[0]
    assert "Traceback" not in result.stderr and "Unclosed" not in result.stderr


@pytest.mark.parametrize("args", [*COMMANDS[:3], COMMANDS[-2]], ids=lambda args: " ".join(args[:2]))
def test_command_against_a_port_that_is_not_kafka_exits_1_without_traceback(
    args: list[str], not_kafka: int
) -> None:
    address = f"127.0.0.1:{not_kafka}"
    result = run_wirewatch(args, address)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "Unclosed" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith(f"no Kafka broker at {address}")
