"""Fault-suite fixtures: one s3-backed broker and one fault server for the session, and the
per-case summary lines printed at the end of the run (``make test`` and ``make test-faults``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.pages import FaultServer
from wirewatch_tools.broker import EmbeddedBroker

SUMMARY: list[str] = []


def full_suite() -> bool:
    """``make test-faults`` runs every case at full length; ``make test`` a reduced set."""
    return os.environ.get("WIREWATCH_FAULTS", "reduced") == "full"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/faults" in str(item.fspath):
            item.add_marker(pytest.mark.faults)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if SUMMARY:
        mode = "full" if full_suite() else "reduced"
        terminalreporter.section(f"fault injection ({mode} suite)")
        for line in SUMMARY:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def faults_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """Tansu on SeaweedFS storage, so that it can be stopped and restarted without data loss."""
    root = tmp_path_factory.mktemp("faults-broker")
    broker = EmbeddedBroker(storage="s3", data_dir=root / "data", log_path=root / "tansu.log")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def fault_server(eval_dir: Path) -> Iterator[FaultServer]:
    server = FaultServer(eval_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()
