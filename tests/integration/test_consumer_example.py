"""examples/consume_events.py, run as a user runs it, against the real embedded broker.

Its input is what the coder sends for the five seed articles (tests/integration/seed_events.py):
31 messages, one of them a tombstone for an event id that a later article moved.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from services.common.settings import KafkaSettings
from tests.integration.seed_events import compacted, seed_event_messages, send_messages

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "consume_events.py"


def test_consumer_example_prints_the_compacted_view_with_the_seed_call_once_with_5_articles(
    kafka_settings: KafkaSettings, unique_topic: str
) -> None:
    messages = seed_event_messages()
    tombstoned = {key for key, value in messages if value is None}
    assert tombstoned, "the seeds no longer produce a tombstone; the test would not test it"
    asyncio.run(send_messages(kafka_settings, unique_topic, messages))

    result = subprocess.run(  # noqa: S603 - the example, as documented
        [
            sys.executable,
            str(EXAMPLE),
            "--bootstrap-servers",
            kafka_settings.bootstrap_servers,
            "--topic",
            unique_topic,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    printed = [json.loads(line) for line in result.stdout.splitlines()]
    ids = [event["event_id"] for event in printed]
    assert len(ids) == len(set(ids))
    assert {event["event_id"]: event for event in printed} == compacted(messages)
    assert not tombstoned & set(ids)
    calls = [
        event
        for event in printed
        if event["action"]["cameo_code"] == "036"
        and (event["source"]["country"], event["target"]["country"]) == ("USA", "RUS")
    ]
    assert len(calls) == 1
    assert calls[0]["num_articles"] == 5 and len(calls[0]["article_ids"]) == 5
