"""`wirewatch run` keeps its default ports when free and steps aside when one is taken."""

from __future__ import annotations

import socket

import pytest

from wirewatch_tools.broker import free_port
from wirewatch_tools.local.pipeline import port_to_use


def test_a_free_default_port_is_kept() -> None:
    port = free_port()
    assert port_to_use(port, "the demo feed") == port


def test_a_taken_default_port_is_replaced_by_a_free_one_and_said(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        chosen = port_to_use(taken, "poller metrics")
        assert chosen != taken
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as check:
            check.bind(("127.0.0.1", chosen))
    assert f"port {taken} for poller metrics is in use; using {chosen}" in capsys.readouterr().out
