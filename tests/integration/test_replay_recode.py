"""`wirewatch replay recode` on the real broker: the seed articles re-coded give the same events."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
from typing import Any

from services.common import schemas
from services.common.kafka import ValidatingProducer, make_producer
from services.common.settings import KafkaSettings
from services.common.topics import TopicSpec, ensure_topics
from tests.integration.test_replay_copy import WIREWATCH, env_for, read_topic
from wirewatch_tools.demo.server import load_seed_articles


def seed_dedup_results() -> list[dict[str, Any]]:
    """The five seed articles (wirewatch_tools/demo/seeds, one story) as ``dedup_result.v1``."""
    messages: list[dict[str, Any]] = []
    for seed in load_seed_articles():
        url = f"http://127.0.0.1:8008/articles/{seed.number}.html"
        text = "\n\n".join(seed.paragraphs)
        article = {
            "schema": schemas.ARTICLE,
            "article_id": hashlib.sha256(url.encode()).hexdigest()[:16],
            "url": url,
            "title": seed.title,
            "text": text,
            "source": seed.outlet,
            "published": seed.published.isoformat().replace("+00:00", "Z"),
            "content_hash": hashlib.sha256(text.encode()).hexdigest()[:16],
            "fetched_at": "2025-03-17T12:00:00.000Z",
            "first_seen": "2025-03-17T11:59:00.000Z",
        }
        messages.append(
            {
                "schema": schemas.DEDUP_RESULT,
                "article_id": article["article_id"],
                "story_id": "story-seed",
                "copy_of": None,
                "is_first_in_story": seed.number == 0,
                "similarity": 0.0 if seed.number == 0 else 0.5,
                "signals": [],
                "article": article,
            }
        )
    return messages


async def produce_seeds(kafka: KafkaSettings, topic: str) -> None:
    await ensure_topics(kafka, [TopicSpec(topic, 3)])
    producer = make_producer(kafka)
    await producer.start()
    try:
        sender = ValidatingProducer(producer, service="test")
        for message in seed_dedup_results():
            await sender.send_and_wait(topic, message, key=message["article_id"])
        # Not an article: it must end in the DLQ with its reason, not stop the re-code.
        await producer.send_and_wait(topic, b'{"schema": "article.v1"}', key=b"broken")
    finally:
        await producer.stop()


def recode(kafka: KafkaSettings, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*WIREWATCH, "replay", "recode", *args],
        env=env_for(kafka),
        capture_output=True,
        timeout=300,
        check=False,
    )


async def test_recoding_the_seed_articles_twice_yields_the_same_event_ids(
    kafka_settings: KafkaSettings, unique_topic: str
) -> None:
    await produce_seeds(kafka_settings, unique_topic)
    events_topic = f"{unique_topic}-events"
    args = ("--topic", unique_topic, "--into", events_topic)

    first = await asyncio.to_thread(recode, kafka_settings, *args)
    assert first.returncode == 0, first.stderr.decode()
    after_first = [
        r for rs in (await read_topic(kafka_settings, events_topic)).values() for r in rs
    ]
    second = await asyncio.to_thread(recode, kafka_settings, *args)
    assert second.returncode == 0, second.stderr.decode()
    after_both = [r for rs in (await read_topic(kafka_settings, events_topic)).values() for r in rs]

    first_ids = [r.key.decode() for r in after_first]
    assert first_ids and len(first_ids) == len(set(first_ids))
    seen = {(r.partition, r.offset) for r in after_first}
    second_ids = [r.key.decode() for r in after_both if (r.partition, r.offset) not in seen]
    assert sorted(second_ids) == sorted(first_ids)
    for record in after_both:
        event = json.loads(record.value)
        schemas.validate(schemas.DIPLOMATIC_EVENT, event)
        assert event["event_id"] == record.key.decode()
    # What a compacted topic keeps: one event per id, each the latest state.
    latest = {r.key: json.loads(r.value) for r in after_both}
    assert set(latest) == {k.encode() for k in first_ids}

    letters = [
        json.loads(r.value)
        for rs in (await read_topic(kafka_settings, f"{unique_topic}.dlq")).values()
        for r in rs
    ]
    # One letter per run, both naming the same broken record.
    assert [letter["reason"] for letter in letters] == ["schema_invalid", "schema_invalid"]
    assert len({(letter["partition"], letter["offset"]) for letter in letters}) == 1
    assert "5 articles" in first.stdout.decode()


async def test_recode_dry_run_lists_the_events_and_sends_nothing(
    kafka_settings: KafkaSettings, unique_topic: str
) -> None:
    await produce_seeds(kafka_settings, unique_topic)
    events_topic = f"{unique_topic}-events"
    result = await asyncio.to_thread(
        recode, kafka_settings, "--topic", unique_topic, "--into", events_topic, "--dry-run"
    )
    assert result.returncode == 0, result.stderr.decode()
    listed = [line.split()[0] for line in result.stdout.decode().splitlines() if line[:1] == " "]
    assert listed
    assert "dry run: nothing sent" in result.stdout.decode()
    assert sum(map(len, (await read_topic(kafka_settings, events_topic)).values())) == 0
