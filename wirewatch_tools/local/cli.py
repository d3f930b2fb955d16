"""Commands that are not a pipeline stage: broker, run, tail, topics, demo-server."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from services.common.settings import KafkaSettings
from wirewatch_tools.broker import EmbeddedBroker
from wirewatch_tools.local import pipeline


def register(subparsers: Any) -> None:
    broker = subparsers.add_parser("broker", help="run the embedded Kafka-protocol broker (Tansu)")
    broker.add_argument(
        "--storage",
        choices=("memory", "s3"),
        default="memory",
        help="memory (default, lost on stop) or s3 (local SeaweedFS, durable)",
    )
    broker.add_argument("--port", type=int, default=9092, help="listen port (0: any free port)")
    broker.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where --storage s3 keeps its data (default: .wirewatch/s3)",
    )
    broker.set_defaults(handler=run_broker)

    run = subparsers.add_parser("run", help="the whole pipeline on this machine")
    run.add_argument("--storage", choices=("memory", "s3"), default="memory")
    run.add_argument(
        "--feeds",
        type=Path,
        default=None,
        help="feed list (YAML or OPML); default: the bundled demo feed",
    )
    run.add_argument("--demo-port", type=int, default=8008)
    run.add_argument(
        "--metrics-base-port",
        type=int,
        default=9101,
        help="services get consecutive metrics ports from here",
    )
    run.set_defaults(handler=pipeline.run_pipeline)

    tail = subparsers.add_parser("tail", help="print a topic's messages as JSON lines")
    tail.add_argument("topic")
    tail.add_argument("--from-beginning", action="store_true")
    tail.add_argument("--max", type=int, default=None, help="stop after N messages")
    tail.add_argument(
        "--idle-timeout",
        type=float,
        default=None,
        help="stop after this many seconds without a message",
    )
    tail.add_argument("--meta", action="store_true", help="wrap each value with its coordinates")
    tail.set_defaults(handler=run_tail, needs_broker=True)

    topics = subparsers.add_parser("topics", help="list topics with partitions and end offsets")
    topics.set_defaults(handler=run_topics, needs_broker=True)

    demo = subparsers.add_parser("demo-server", help="serve the bundled demo feed on 127.0.0.1")
    demo.add_argument("--port", type=int, default=8008)
    demo.set_defaults(handler=run_demo_server)


def run_broker(args: argparse.Namespace) -> int:
    data_dir = args.data_dir or (Path(".wirewatch") / "s3" if args.storage == "s3" else None)
    broker = EmbeddedBroker(storage=args.storage, port=args.port or None, data_dir=data_dir)
    stop = _stop_on_signals()
    broker.start()
    print(
        f"broker ready: KAFKA_BOOTSTRAP_SERVERS={broker.bootstrap_servers}"  # noqa: T201
        f" (storage {args.storage}); Ctrl-C to stop",
        flush=True,
    )
    try:
        while not stop:
            time.sleep(0.2)
            if broker.process is not None and broker.process.poll() is not None:
                print(f"broker exited with {broker.process.returncode}", file=sys.stderr)  # noqa: T201
                return 1
    finally:
        broker.stop()
    return 0


def _stop_on_signals() -> list[int]:
    """A list that becomes non-empty on SIGINT/SIGTERM; polled by blocking loops."""
    received: list[int] = []

    def handle(signum: int, _: Any) -> None:
        received.append(signum)

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)
    return received


def run_tail(args: argparse.Namespace) -> int:
    return asyncio.run(
        tail_topic(
            KafkaSettings(),
            args.topic,
            from_beginning=args.from_beginning,
            limit=args.max,
            idle_timeout=args.idle_timeout,
            with_meta=args.meta,
        )
    )


def render_value(raw: bytes | None) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {"undecodable_b64": __import__("base64").b64encode(raw).decode()}


async def tail_topic(
    kafka: KafkaSettings,
    topic: str,
    *,
    from_beginning: bool,
    limit: int | None,
    idle_timeout: float | None,
    with_meta: bool,
) -> int:
    from aiokafka import TopicPartition

    from services.common.kafka import make_consumer, start_consumer

    consumer = make_consumer(kafka, group_id=None)
    try:
        await start_consumer(consumer)
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer.stop()
            consumer = make_consumer(kafka, group_id=None)
            await start_consumer(consumer)
            partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            print(f"no such topic: {topic}", file=sys.stderr)  # noqa: T201
            return 2
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        if from_beginning:
            await consumer.seek_to_beginning(*assigned)
        else:
            await consumer.seek_to_end(*assigned)
        printed = 0
        last_message = time.monotonic()
        while limit is None or printed < limit:
            batch = await consumer.getmany(timeout_ms=500)
            if not batch:
                if idle_timeout is not None and time.monotonic() - last_message > idle_timeout:
                    break
                continue
            last_message = time.monotonic()
            for records in batch.values():
                for record in records:
                    value = render_value(record.value)
                    if with_meta:
                        value = {
                            "topic": record.topic,
                            "partition": record.partition,
                            "offset": record.offset,
                            "timestamp": record.timestamp,
                            "key": record.key.decode(errors="replace") if record.key else None,
                            "value": value,
                        }
                    print(json.dumps(value, ensure_ascii=False), flush=True)  # noqa: T201
                    printed += 1
                    if limit is not None and printed >= limit:
                        return 0
        return 0
    finally:
        await consumer.stop()


def run_topics(_: argparse.Namespace) -> int:
    for line in asyncio.run(describe_topics(KafkaSettings())):
        print(line)  # noqa: T201
    return 0


async def describe_topics(kafka: KafkaSettings) -> list[str]:
    from aiokafka import TopicPartition

    from services.common.kafka import make_consumer, start_consumer

    consumer = make_consumer(kafka, group_id=None)
    try:
        await start_consumer(consumer)
        names = sorted(t for t in await consumer.topics() if not t.startswith("__"))
        lines = [f"{'topic':40} {'partitions':>10} {'messages':>10}  end offsets"]
        for name in names:
            partitions = sorted(consumer.partitions_for_topic(name) or ())
            tps = [TopicPartition(name, p) for p in partitions]
            ends = await consumer.end_offsets(tps) if tps else {}
            begins = await consumer.beginning_offsets(tps) if tps else {}
            total = sum(ends[tp] - begins[tp] for tp in tps)
            offsets = " ".join(f"{tp.partition}:{ends[tp]}" for tp in tps)
            lines.append(f"{name:40} {len(partitions):>10} {total:>10}  {offsets}")
        return lines
    finally:
        await consumer.stop()


def run_demo_server(args: argparse.Namespace) -> int:
    from wirewatch_tools.demo.server import serve

    stop = asyncio.Event()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(port=args.port, stop=stop)

    asyncio.run(main())
    return 0


def env_with(**values: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(values)
    return env
