"""``wirewatch export`` from a real events topic on the embedded broker.

The topic holds what the coder sends for the five seed articles (tests/integration/
seed_events.py: 31 messages, one tombstone). Every exported row must be an event of the
compacted view, with its id, code and counts, and every event of the view a row.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import struct
import subprocess
import sys
import termios
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from services.common import schemas
from services.common.kafka import SCHEMA_HEADER, encode_json, make_producer
from services.common.settings import KafkaSettings
from tests.integration.seed_events import compacted, seed_event_messages, send_messages
from tests.unit.test_export import GDELT_2_COLUMNS

ROOT = Path(__file__).resolve().parents[2]


def wirewatch(args: list[str], bootstrap: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own entry point
        [sys.executable, "-m", "wirewatch_tools.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap},
        timeout=120,
        check=False,
    )


def expected_rows(view: dict[str, dict[str, Any]]) -> set[tuple[Any, ...]]:
    return {
        (
            event["event_id"],
            int(event["event_date"].replace("-", "")),
            event["action"]["cameo_code"],
            event["action"]["quad_class"],
            event["num_articles"],
            event["num_sources"],
        )
        for event in view.values()
    }


def test_export_of_the_seed_topic_equals_its_compacted_view_in_tsv_parquet_and_plover(
    kafka_settings: KafkaSettings, unique_topic: str, tmp_path: Path
) -> None:
    messages = seed_event_messages()
    view = compacted(messages)
    assert len(view) < len({key for key, _ in messages})  # a tombstone deleted an id
    asyncio.run(send_messages(kafka_settings, unique_topic, messages))
    bootstrap = kafka_settings.bootstrap_servers
    tsv, parquet, plover = tmp_path / "e.tsv", tmp_path / "e.parquet", tmp_path / "e.jsonl"
    for fmt, path in (("tsv", tsv), ("parquet", parquet), ("plover", plover)):
        result = wirewatch(
            ["export", "--topic", unique_topic, "--format", fmt, "-o", str(path)], bootstrap
        )
        assert result.returncode == 0, result.stderr
        assert f"exported {len(view)} events" in result.stderr
        assert f"{len(messages)} messages, 1 tombstones applied" in result.stderr

    frame = pd.read_csv(
        tsv,
        sep="\t",
        header=None,
        names=GDELT_2_COLUMNS,
        dtype={"GLOBALEVENTID": str, "EventCode": str, "EventBaseCode": str, "EventRootCode": str},
    )
    assert len(frame) == len(view)
    columns = ["GLOBALEVENTID", "SQLDATE", "EventCode", "QuadClass", "NumArticles", "NumSources"]
    assert {tuple(row) for row in frame[columns].itertuples(index=False)} == expected_rows(view)

    table = pq.read_table(parquet)
    assert table.column_names == GDELT_2_COLUMNS
    types = {name: table.schema.field(name).type for name in columns}
    assert types == {
        "GLOBALEVENTID": pa.string(),
        "SQLDATE": pa.int32(),
        "EventCode": pa.string(),
        "QuadClass": pa.int32(),
        "NumArticles": pa.int32(),
        "NumSources": pa.int32(),
    }
    assert {tuple(row[c] for c in columns) for row in table.to_pylist()} == expected_rows(view)

    records = [json.loads(line) for line in plover.read_text(encoding="utf-8").splitlines()]
    assert {r["id"]: (r["cameo_code"], r["num_articles"]) for r in records} == {
        e["event_id"]: (e["action"]["cameo_code"], e["num_articles"]) for e in view.values()
    }
    pair = ("USA", "RUS")
    calls = [
        r
        for r in records
        if r["cameo_code"] == "036" and (r["source"][0]["code"], r["recipient"][0]["code"]) == pair
    ]
    assert [len(r["sources"]) for r in calls] == [5]


def test_export_since_until_keeps_the_events_dated_in_the_range(
    kafka_settings: KafkaSettings, unique_topic: str
) -> None:
    messages = seed_event_messages()
    asyncio.run(send_messages(kafka_settings, unique_topic, messages))
    args = ["export", "--topic", unique_topic, "--format", "plover"]
    result = wirewatch(
        [*args, "--since", "2025-03-17", "--until", "2025-03-18"], kafka_settings.bootstrap_servers
    )
    assert result.returncode == 0, result.stderr
    dated = sorted(
        e["event_id"] for e in compacted(messages).values() if e["event_date"] == "2025-03-17"
    )
    assert dated
    assert sorted(json.loads(line)["id"] for line in result.stdout.splitlines()) == dated


def test_export_of_a_topic_that_is_not_an_event_topic_names_what_it_holds(
    kafka_settings: KafkaSettings, unique_topic: str
) -> None:
    article = json.loads((ROOT / "schemas" / "examples" / "article.v1.json").read_text())

    async def send() -> None:
        producer = make_producer(kafka_settings)
        await producer.start()
        try:
            await producer.send_and_wait(
                unique_topic,
                encode_json(article),
                key=b"http://127.0.0.1/a",
                headers=[(SCHEMA_HEADER, schemas.ARTICLE.encode())],
                partition=0,
            )
        finally:
            await producer.stop()

    asyncio.run(send())
    result = wirewatch(
        ["export", "--topic", unique_topic, "--format", "tsv"], kafka_settings.bootstrap_servers
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"wirewatch export: {unique_topic} is not an event topic: {unique_topic} (partition 0, "
        "offset 0) is a article.v1 message; export reads a topic of diplomatic_event.v1 events "
        "such as events.diplomatic\n"
    )


def test_export_of_a_missing_topic_says_so(
    kafka_settings: KafkaSettings, unique_topic: str
) -> None:
    result = wirewatch(
        ["export", "--topic", unique_topic, "--format", "tsv"], kafka_settings.bootstrap_servers
    )
    assert result.returncode == 2
    assert result.stderr == f"wirewatch export: no such topic: {unique_topic}\n"


def test_export_draws_a_progress_bar_when_stderr_is_a_terminal(
    kafka_settings: KafkaSettings, unique_topic: str, tmp_path: Path
) -> None:
    messages = seed_event_messages()
    asyncio.run(send_messages(kafka_settings, unique_topic, messages))
    leader, follower = os.openpty()
    # A terminal window of 24 rows, 100 columns (a fresh pty has none, and no bar fits in 0).
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    try:
        with (tmp_path / "out.tsv").open("w") as out:
            process = subprocess.run(  # noqa: S603 - our own entry point
                [sys.executable, "-m", "wirewatch_tools.cli", "export", "--topic", unique_topic]
                + ["--format", "tsv"],
                stdout=out,
                stderr=follower,
                env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers},
                timeout=120,
                check=False,
            )
        os.close(follower)
        follower = -1
        drawn = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal's other end is closed: all read
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        if follower != -1:
            os.close(follower)
        os.close(leader)
    assert process.returncode == 0
    text = drawn.decode(errors="replace")
    assert f"reading {unique_topic}" in text
    assert f"{len(messages)}/{len(messages)}" in text
