"""`wirewatch run` starts broker, demo feed and every service, reports the demo's articles through
to events, and Ctrl-C leaves nothing behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from wirewatch_tools.broker import free_port
from wirewatch_tools.local.pipeline import existing_services


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (children run in their own sessions, not groups)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_run_codes_the_demo_feed_to_events_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    output = tmp_path / "run.out"
    with output.open("wb") as sink:
        run = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "wirewatch_tools.cli",
                "run",
                "--demo-port",
                str(free_port()),
                "--metrics-base-port",
                str(free_port()),
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + 90
        while b"wirewatch is running" not in output.read_bytes():
            assert run.poll() is None, output.read_text()
            assert time.monotonic() < deadline, output.read_text()
            time.sleep(0.2)
        # The bundled demo feed goes through every stage: the progress line reaches events.
        deadline = time.monotonic() + 180
        while not re.search(rb"progress: .*, [1-9]\d* events", output.read_bytes()):
            assert run.poll() is None, output.read_text()[-3000:]
            assert time.monotonic() < deadline, output.read_text()[-3000:]
            time.sleep(0.5)
        started = descendants(run.pid)
        run.send_signal(signal.SIGINT)
        assert run.wait(timeout=60) == 0, output.read_text()[-3000:]
    printed = output.read_text()
    for service in existing_services():
        assert service in printed.split("wirewatch is running:", 1)[1].splitlines()[0]
    assert "tail events.diplomatic" in printed and "/metrics" in printed
    # broker, demo server and the four services at least
    assert len(started) >= 2 + len(existing_services()), started
    time.sleep(0.5)
    assert [pid for pid in started if alive(pid)] == []
