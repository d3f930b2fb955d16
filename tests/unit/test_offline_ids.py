"""Offline input lines (``wirewatch dedup``, ``wirewatch code``) whose ``id`` is not text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.dedup.offline import article_from_line, run_offline
from wirewatch_tools.cli import main

TEXT = "Britain and France condemned Russia on Monday."


def test_dedup_line_with_integer_id_is_read_as_its_text() -> None:
    assert article_from_line({"id": 17, "text": TEXT}).article_id == "17"
    assert article_from_line({"id": 0, "text": TEXT}).article_id == "0"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3.5, "'id' must be a string or an integer, not float (3.5)"),
        (True, "'id' must be a string or an integer, not bool (true)"),
        (["a"], "'id' must be a string or an integer, not list ([\"a\"])"),
    ],
)
def test_dedup_line_with_id_of_another_type_says_what_is_wrong(
    value: object, expected: str
) -> None:
    with pytest.raises(ValueError, match="must be a string") as raised:
        article_from_line({"id": value, "text": TEXT})
    assert str(raised.value) == expected


def test_dedup_offline_output_carries_the_integer_id_as_text() -> None:
    lines = [json.dumps({"id": 1, "text": TEXT}), json.dumps({"id": 2.0, "text": TEXT})]
    first, second = run_offline(lines)
    assert first["id"] == "1" and first["story_id"] and "error" not in first
    assert second["error"] == "line 2: 'id' must be a string or an integer, not float (2.0)"


def test_code_command_codes_integer_ids_and_names_a_wrong_id_type(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    articles = tmp_path / "articles.jsonl"
    lines = [
        {"id": 7, "text": TEXT, "published": "2025-03-17"},
        {"id": {"n": 8}, "text": TEXT},
        {"text": TEXT},
    ]
    articles.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    assert main(["code", str(articles)]) == 0
    captured = capsys.readouterr()
    events = [json.loads(line) for line in captured.out.splitlines()]
    assert events
    assert {article_id for event in events for article_id in event["article_ids"]} == {"7"}
    assert f"{articles}:2: 'id' must be a string or an integer, not dict" in captured.err
    assert f"{articles}:3: needs 'id' and 'text' (no 'id')" in captured.err
