"""What the benchmarks read about the service processes they start: CPU, memory, readiness.

Everything comes from Linux ``/proc`` and the services' own ``/readyz``, so the figures are
those of the real processes (a service's worker processes included), not estimates.
"""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
from pathlib import Path


def process_table() -> dict[int, list[int]]:
    """Children of every process, from ``/proc/<pid>/stat``.

    One scan of ``/proc`` costs a few milliseconds; a sampler that looks at several process
    trees takes one table per sample and passes it to each, so that the benchmark's own
    bookkeeping takes as little as possible of the CPU the pipeline is measured on.
    """
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry))
    return children


def process_tree(root: int, children: dict[int, list[int]] | None = None) -> list[int]:
    """``root`` and its descendants that are alive now (or in ``children``, a process table)."""
    if children is None:
        children = process_table()
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(root: int, children: dict[int, list[int]] | None = None) -> float:
    """CPU time a process and its descendants have run so far, every thread included.

    From ``/proc/<pid>/stat`` (user + system time of the whole thread group, in clock ticks):
    ``schedstat`` counts only a process's main thread, which missed the broker's worker
    threads and the services' consumer and executor threads. Printed beside the rates because
    the machine is shared: with the kernel's autogroup scheduling a whole session gets one fair
    share, however many processes it runs.
    """
    total = 0.0
    for pid in process_tree(root, children):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            # Fields after the command name (which may hold spaces), from field 3 on.
            fields = stat[stat.rindex(")") + 2 :].split()
            total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        except (OSError, IndexError, ValueError):
            continue
    return total


def tree_rss_mb(root: int, children: dict[int, list[int]] | None = None) -> float:
    """Resident memory of a process and its descendants now (``VmRSS``), in MB."""
    total_kb = 0
    for pid in process_tree(root, children):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total_kb += int(line.split()[1])
                break
    return total_kb / 1024


def wait_ready(
    name: str, port: int, process: subprocess.Popen[bytes], timeout: float = 120
) -> None:
    """Until the service's ``/readyz`` answers 200; exits the benchmark if it dies or hangs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{name} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{name} not ready in {timeout:.0f}s")
