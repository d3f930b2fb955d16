"""The compacted event view: the latest value per event id, tombstones deleting ids.

Read from an events topic (every partition from its start to its end now) or from a JSONL file
of events (``wirewatch tail --meta`` output, or one event a line). A topic or line that holds
something other than ``diplomatic_event.v1`` is refused by name, at the first such message.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from tqdm import tqdm

from services.common import schemas
from services.common.errors import SchemaValidationError, WirewatchError
from services.common.kafka import (
    SCHEMA_HEADER,
    end_offsets,
    header_value,
    make_consumer,
    start_consumer,
)
from services.common.settings import KafkaSettings

logger = logging.getLogger(__name__)

Event = dict[str, Any]


class ExportInputError(WirewatchError):
    """The input is not an events topic or events file (or cannot be read as one)."""


@dataclass
class EventView:
    """Event id -> latest event, and what reading it met."""

    events: dict[str, Event] = field(default_factory=dict)
    messages: int = 0
    tombstones: int = 0
    # Tombstones whose key was lost (``wirewatch tail`` without ``--meta`` prints only ``null``).
    keyless_tombstones: int = 0

    def apply(self, key: str | None, value: Event | None) -> None:
        self.messages += 1
        if value is None:
            if key is None:
                self.keyless_tombstones += 1
                return
            self.tombstones += 1
            self.events.pop(key, None)
            return
        self.events[key or value["event_id"]] = value

    def between(self, since: date | None, until: date | None) -> list[Event]:
        """Events dated in ``[since, until)``, ordered by date and id (a stable export)."""
        chosen = [
            event
            for event in self.events.values()
            if (since is None or event["event_date"] >= since.isoformat())
            and (until is None or event["event_date"] < until.isoformat())
        ]
        return sorted(chosen, key=lambda event: (event["event_date"], event["event_id"]))


def what_it_is(value: Any) -> str | None:
    """None for a ``diplomatic_event.v1``-shaped value, else what it is, for an error message."""
    kind = value.get("schema") if isinstance(value, dict) else None
    if kind == schemas.DIPLOMATIC_EVENT:
        return None
    return f"a {kind} message" if isinstance(kind, str) else f"not an event ({_brief(value)})"


def check_event(value: Any, where: str) -> Event:
    """``value`` as a ``diplomatic_event.v1``, or an ``ExportInputError`` saying what it is."""
    what = what_it_is(value)
    if what is not None:
        raise ExportInputError(f"{where} is {what}, not {schemas.DIPLOMATIC_EVENT}")
    try:
        schemas.validate(schemas.DIPLOMATIC_EVENT, value)
    except SchemaValidationError as exc:
        raise ExportInputError(f"{where}: invalid event: {exc.detail}") from exc
    event: Event = value
    return event


def _brief(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def read_jsonl_view(lines: Iterable[str], *, name: str) -> EventView:
    """A view from JSONL: each line an event, ``null``, or ``{"key": …, "value": event|null}``."""
    view = EventView()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{name}:{number}"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ExportInputError(f"{where}: not JSON ({exc})") from exc
        key: str | None = None
        if isinstance(item, dict) and "value" in item and "schema" not in item:
            key = item.get("key") if isinstance(item.get("key"), str) else None
            item = item["value"]
        view.apply(key, None if item is None else check_event(item, where))
    return view


async def read_topic_view(kafka: KafkaSettings, topic: str, *, progress: bool) -> EventView:
    """A view of ``topic`` from the start of every partition to its end at the time of call."""
    from aiokafka import TopicPartition

    consumer = make_consumer(kafka, group_id=None)
    try:
        await start_consumer(consumer)
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise ExportInputError(f"no such topic: {topic}")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        ends = await end_offsets(consumer, tps)
        begins = await consumer.beginning_offsets(tps)
        remaining = {tp for tp in tps if ends[tp] > begins[tp]}
        consumer.assign(list(remaining))
        for tp in remaining:
            consumer.seek(tp, begins[tp])
        total = sum(ends[tp] - begins[tp] for tp in tps)
        view = EventView()
        with tqdm(
            total=total,
            desc=f"reading {topic}",
            unit="msg",
            file=sys.stderr,
            disable=not progress,
            dynamic_ncols=True,
        ) as bar:
            while remaining:
                batch = await consumer.getmany(*remaining, timeout_ms=1000)
                for tp, records in batch.items():
                    for record in records:
                        if record.offset >= ends[tp]:
                            break
                        view.apply(*_decode(record, topic))
                        bar.update(1)
                    if await consumer.position(tp) >= ends[tp]:
                        remaining.discard(tp)
                        consumer.pause(tp)
        return view
    finally:
        await consumer.stop()


def _decode(record: Any, topic: str) -> tuple[str | None, Event | None]:
    where = f"{topic} (partition {record.partition}, offset {record.offset})"
    key = record.key.decode(errors="replace") if record.key else None
    declared = header_value(record.headers, SCHEMA_HEADER)
    if declared is not None and declared.decode(errors="replace") != schemas.DIPLOMATIC_EVENT:
        raise not_an_event_topic(topic, where, f"a {declared.decode(errors='replace')} message")
    if record.value is None:
        return key, None
    try:
        value = json.loads(record.value)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise not_an_event_topic(topic, where, "not JSON") from None
    what = what_it_is(value)
    if what is not None:
        raise not_an_event_topic(topic, where, what)
    return key, check_event(value, where)


def not_an_event_topic(topic: str, where: str, what: str) -> ExportInputError:
    return ExportInputError(
        f"{topic} is not an event topic: {where} is {what}; export reads a topic of "
        f"{schemas.DIPLOMATIC_EVENT} events such as events.diplomatic"
    )


def iter_lines(path: Path) -> Iterator[str]:
    """Lines of ``path`` (``-``: standard input)."""
    if str(path) == "-":
        yield from sys.stdin
        return
    with path.open(encoding="utf-8") as lines:
        yield from lines
