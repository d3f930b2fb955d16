"""The five seed articles (wirewatch_tools/demo/seeds/) coded by the real coder core, sent as
the coder service sends them: each update keyed by its event id, then a tombstone for each id
it replaced.

Shared by the consumer-example and export tests, so that what they read is what the pipeline
writes for the demo feed, not events written by hand.
"""

from __future__ import annotations

from typing import Any

from services.coder import CODER_VERSION
from services.coder.coding import default_coder
from services.coder.core import EventStore, article_from_mapping, code_article
from services.common.kafka import encode_json, make_producer
from services.common.settings import KafkaSettings, TopicNames
from services.common.topics import TopicSpec, ensure_topics, pipeline_topics
from wirewatch_tools.demo.server import load_seed_articles

# One message of the events topic: (key, value); value None is a tombstone.
Message = tuple[str, dict[str, Any] | None]


def seed_article_mappings() -> list[dict[str, Any]]:
    """The seeds as the demo feed presents them (outlet, URL, publication time)."""
    return [
        {
            "id": f"seed-{seed.number}",
            "url": f"http://127.0.0.1:8008/articles/{seed.number}.html",
            "title": seed.title,
            "text": "\n\n".join((seed.title, *seed.paragraphs)),
            "source": seed.outlet,
            "published": seed.published.isoformat(),
        }
        for seed in load_seed_articles()
    ]


def seed_event_messages() -> list[Message]:
    """The events topic's messages for the seeds, in the order the coder sends them."""
    coder = default_coder()
    store = EventStore({}, coder_version=CODER_VERSION)
    messages: list[Message] = []
    for raw in seed_article_mappings():
        for update in code_article(coder, store, article_from_mapping(raw, story_id="seed-story")):
            messages.append((update.event["event_id"], update.event))
            messages.extend((replaced, None) for replaced in update.replaces)
    return messages


def compacted(messages: list[Message]) -> dict[str, dict[str, Any]]:
    """Latest value per key, tombstones deleting keys: what a compacted topic converges to."""
    view: dict[str, dict[str, Any]] = {}
    for key, value in messages:
        if value is None:
            view.pop(key, None)
        else:
            view[key] = value
    return view


def events_topic_spec(name: str) -> TopicSpec:
    """``name`` configured as the pipeline configures events.diplomatic (partitions, compaction)."""
    (spec,) = [s for s in pipeline_topics(TopicNames(events=name)) if s.name == name]
    return spec


async def send_messages(kafka: KafkaSettings, topic: str, messages: list[Message]) -> None:
    """Create ``topic`` like the events topic and send ``messages`` with the services' producer."""
    await ensure_topics(kafka, [events_topic_spec(topic)])
    producer = make_producer(kafka)
    await producer.start()
    try:
        for key, value in messages:
            payload = None if value is None else encode_json(value)
            await producer.send_and_wait(topic, payload, key=key.encode())
    finally:
        await producer.stop()
