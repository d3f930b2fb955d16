"""Read events.diplomatic into its compacted view: the latest event per id, tombstones applied.

Self-contained: needs only aiokafka and cramjam (the services compress with zstd), not wirewatch.

    pip install aiokafka cramjam
    python examples/consume_events.py --bootstrap-servers 127.0.0.1:9092 [--follow]

Prints the view as JSON lines (one event a line, by event date) once it has read every
partition to its end, or, with --follow, every change as it arrives:
{"event_id": ..., "deleted": true} for a tombstone. See docs/consuming.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition


async def read_view(bootstrap_servers: str, topic: str, *, follow: bool) -> dict[str, Any]:
    """The compacted view of ``topic``: event id -> latest event; a tombstone deletes the id."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, enable_auto_commit=False, fetch_max_wait_ms=100
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not partitions:
            raise SystemExit(f"no such topic: {topic}")
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        view: dict[str, Any] = {}
        while True:
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                for record in records:
                    event_id = record.key.decode()
                    if record.value is None:  # a tombstone: the event was replaced or joined
                        view.pop(event_id, None)
                    else:
                        view[event_id] = json.loads(record.value)
                    if follow:
                        change = view.get(event_id, {"event_id": event_id, "deleted": True})
                        print(json.dumps(change, ensure_ascii=False), flush=True)  # noqa: T201
            if not follow and not batch and await caught_up(consumer, partitions):
                return view
    finally:
        await consumer.stop()


async def caught_up(consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> bool:
    """Every partition read to the high watermark of its last fetch (exact on every broker)."""
    for tp in partitions:
        highwater = consumer.highwater(tp)
        if highwater is None or await consumer.position(tp) < highwater:
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap-servers", default="127.0.0.1:9092")
    parser.add_argument("--topic", default="events.diplomatic")
    parser.add_argument("--follow", action="store_true", help="keep reading; print each change")
    args = parser.parse_args()
    view = asyncio.run(read_view(args.bootstrap_servers, args.topic, follow=args.follow))
    for event in sorted(view.values(), key=lambda e: (e["event_date"], e["event_id"])):
        print(json.dumps(event, ensure_ascii=False))  # noqa: T201


if __name__ == "__main__":
    main()
