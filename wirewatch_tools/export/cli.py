"""``wirewatch export``: the compacted event view as GDELT 2.0 TSV or Parquet, or PLOVER JSONL."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any

EXIT_INVALID = 2
FORMATS = ("tsv", "parquet", "plover")


def register(subparsers: Any) -> None:
    export = subparsers.add_parser(
        "export",
        help="write the compacted event view as GDELT 2.0 TSV/Parquet or PLOVER JSON records",
        description=(
            "Read the latest value of every event id (tombstones applied) from an events topic "
            "or a JSONL file of events, and write the events dated in [--since, --until) as a "
            "GDELT 2.0 event table (tsv, parquet) or PLOVER JSON records, one a line (plover)."
        ),
    )
    source = export.add_mutually_exclusive_group()
    source.add_argument("--topic", help="events topic (default: WIREWATCH_TOPIC_EVENTS)")
    source.add_argument(
        "--input",
        type=Path,
        help="JSONL of events instead of a topic: `wirewatch tail --meta` output, or an event a "
        "line ('-': standard input)",
    )
    export.add_argument("--format", choices=FORMATS, required=True)
    export.add_argument(
        "-o", "--output", default="-", help="file to write ('-', the default: standard output)"
    )
    export.add_argument("--since", type=event_day, help="first event date, inclusive (ISO 8601)")
    export.add_argument("--until", type=event_day, help="last event date, exclusive (ISO 8601)")
    export.add_argument("--header", action="store_true", help="tsv: a first row of column names")
    export.set_defaults(handler=run_export, needs_broker=reads_topic)


def reads_topic(args: argparse.Namespace) -> bool:
    return args.input is None


def event_day(value: str) -> date:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).date()
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date: {value!r}") from None


def run_export(args: argparse.Namespace) -> int:
    from wirewatch_tools.export.view import ExportInputError

    if args.format == "parquet" and args.output == "-":
        print("wirewatch export: --format parquet needs --output FILE", file=sys.stderr)  # noqa: T201
        return EXIT_INVALID
    try:
        view, read_from = _read_view(args)
    except ExportInputError as exc:
        print(f"wirewatch export: {exc}", file=sys.stderr)  # noqa: T201
        return EXIT_INVALID
    events = view.between(args.since, args.until)
    written = _write(events, args)
    where = "standard output" if args.output == "-" else args.output
    print(  # noqa: T201
        f"exported {written} events to {where} ({len(view.events)} in the view of {read_from}: "
        f"{view.messages} messages, {view.tombstones} tombstones applied)",
        file=sys.stderr,
    )
    if view.keyless_tombstones:
        print(  # noqa: T201
            f"warning: {view.keyless_tombstones} tombstones without a key were not applied "
            "(export from the topic, or from `wirewatch tail --meta` output)",
            file=sys.stderr,
        )
    return 0


def _read_view(args: argparse.Namespace) -> tuple[Any, str]:
    from wirewatch_tools.export.view import iter_lines, read_jsonl_view, read_topic_view

    if args.input is not None:
        return read_jsonl_view(iter_lines(args.input), name=str(args.input)), str(args.input)
    from services.common.settings import KafkaSettings, TopicNames

    kafka = KafkaSettings()
    topic = args.topic or TopicNames().events
    view = asyncio.run(read_topic_view(kafka, topic, progress=sys.stderr.isatty()))
    return view, topic


def _write(events: list[dict[str, Any]], args: argparse.Namespace) -> int:
    from wirewatch_tools.export import gdelt
    from wirewatch_tools.export.plover import plover_record

    if args.format == "parquet":
        return gdelt.write_parquet((gdelt.gdelt_row(e) for e in events), Path(args.output))
    out = sys.stdout if args.output == "-" else open(args.output, "w", encoding="utf-8")  # noqa: SIM115
    try:
        if args.format == "tsv":
            return gdelt.write_tsv((gdelt.gdelt_row(e) for e in events), out, header=args.header)
        for event in events:
            out.write(json.dumps(plover_record(event), ensure_ascii=False) + "\n")
        return len(events)
    finally:
        if out is not sys.stdout:
            out.close()
        else:
            out.flush()
