"""``wirewatch code ARTICLES.jsonl``: aggregated events as JSONL; bad lines reported, not fatal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.common import schemas
from wirewatch_tools.cli import main


def test_code_command_prints_valid_events_and_reports_bad_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    articles = tmp_path / "articles.jsonl"
    good = {
        "id": "a1",
        "url": "http://127.0.0.1/a1",
        "title": "Britain and France condemn Russia",
        "text": "Britain and France condemned Russia on Monday.",
        "source": "outlet",
        "published": "2025-03-17",
    }
    articles.write_text(json.dumps(good) + "\nnot json\n" + json.dumps({"id": "x"}) + "\n")
    assert main(["code", str(articles)]) == 0
    captured = capsys.readouterr()
    events = [json.loads(line) for line in captured.out.splitlines()]
    assert {(e["source"]["country"], e["target"]["country"]) for e in events} == {
        ("GBR", "RUS"),
        ("FRA", "RUS"),
    }
    for event in events:
        schemas.validate(schemas.DIPLOMATIC_EVENT, event)
        assert event["event_date"] == "2025-03-17"
    assert ":2: not JSON" in captured.err and ":3: needs 'id' and 'text'" in captured.err
