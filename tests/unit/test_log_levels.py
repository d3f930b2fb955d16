"""A service logs at ``--log-level`` when given, else at its WIREWATCH_<SERVICE>_LOG_LEVEL."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.extractor import app as extractor_app
from services.poller import app as poller_app
from wirewatch_tools import cli


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:], root.level = handlers, level


@pytest.fixture
def levels_seen(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[int]:
    """The root logger's level when each service would have started (they are not started)."""
    seen: list[int] = []

    async def record(*_: Any) -> int:
        seen.append(logging.getLogger().level)
        return 0

    monkeypatch.setattr(poller_app, "run_service", record)
    monkeypatch.setattr(extractor_app, "run_extractor", record)
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text("feeds:\n  - url: https://example.org/feed.xml\n")
    monkeypatch.setenv("WIREWATCH_POLLER_FEEDS", str(feeds))
    return seen


@pytest.mark.parametrize("service", ["poller", "extractor"])
def test_the_services_own_setting_applies_without_the_option(
    service: str, levels_seen: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(f"WIREWATCH_{service.upper()}_LOG_LEVEL", "WARNING")
    assert cli.main([service]) == 0
    assert levels_seen == [logging.WARNING]


@pytest.mark.parametrize("service", ["poller", "extractor"])
def test_the_command_line_option_wins_over_the_setting(
    service: str, levels_seen: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(f"WIREWATCH_{service.upper()}_LOG_LEVEL", "WARNING")
    assert cli.main(["--log-level", "DEBUG", service]) == 0
    assert levels_seen == [logging.DEBUG]


def test_a_poller_without_a_feed_list_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("WIREWATCH_POLLER_FEEDS", raising=False)
    assert cli.main(["poller"]) == 2
    assert "wirewatch poller: bad configuration" in capsys.readouterr().err


def test_other_commands_log_at_info_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    monkeypatch.setattr(
        cli, "build_parser", lambda: _parser_running(lambda: seen.append(logging.getLogger().level))
    )
    assert cli.main(["anything"]) == 0
    assert seen == [logging.INFO]


def _parser_running(action: Any) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    parser.add_argument("--log-level", default=None)
    parser.add_argument("command")
    parser.set_defaults(handler=lambda _args: action() or 0)
    return parser
