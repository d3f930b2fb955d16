"""Re-code input handling: which messages become articles, in which order, and why others not."""

from __future__ import annotations

import json

from aiokafka import ConsumerRecord

from services.coder.recode import article_for_coding, collect_articles
from services.common import schemas
from services.common.kafka import Failure
from tests.integration.test_replay_recode import seed_dedup_results


def record(value: bytes | None, *, timestamp: int, partition: int, offset: int) -> ConsumerRecord:
    return ConsumerRecord(
        topic="articles.deduplicated",
        partition=partition,
        offset=offset,
        timestamp=timestamp,
        timestamp_type=0,
        key=None,
        value=value,
        checksum=None,
        serialized_key_size=0,
        serialized_value_size=len(value or b""),
        headers=(),
    )


def test_dedup_result_gives_its_article_with_the_story_id() -> None:
    message = seed_dedup_results()[0]
    article = article_for_coding(json.dumps(message).encode())
    assert isinstance(article, dict)
    assert article["article_id"] == message["article_id"]
    assert article["story_id"] == "story-seed" and article["text"] == message["article"]["text"]


def test_plain_article_is_accepted_without_a_story() -> None:
    article = seed_dedup_results()[1]["article"]
    assert article_for_coding(json.dumps(article).encode()) == article


def test_unusable_messages_are_dead_letters_with_a_reason() -> None:
    event = json.dumps({"schema": schemas.DIPLOMATIC_EVENT}).encode()
    blank = json.dumps(seed_dedup_results()[0]["article"] | {"text": "   "}).encode()
    outcomes = [article_for_coding(raw) for raw in (b"\xff", None, event, blank)]
    assert all(isinstance(o, Failure) for o in outcomes)
    reasons = [o.reason for o in outcomes if isinstance(o, Failure)]
    assert reasons == ["invalid_json", "empty_message", "unexpected_schema", "not_codable"]


def test_articles_are_ordered_by_record_time_then_partition_and_offset() -> None:
    seeds = [json.dumps(m).encode() for m in seed_dedup_results()]
    records = [
        record(seeds[0], timestamp=300, partition=0, offset=7),
        record(seeds[1], timestamp=100, partition=2, offset=1),
        record(b"not json", timestamp=150, partition=1, offset=0),
        record(seeds[2], timestamp=100, partition=1, offset=4),
    ]
    collected = collect_articles(records)
    order = [a["article_id"] for a in collected.articles]
    expected = [json.loads(seeds[n])["article_id"] for n in (2, 1, 0)]
    assert order == expected
    assert [(r.offset, letter.reason) for r, letter in collected.rejected] == [(0, "invalid_json")]
