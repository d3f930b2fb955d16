import base64
import json
import logging
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from services.common import kafka as kafka_module
from services.common import schemas
from services.common.kafka import (
    FIRST_SEEN_HEADER,
    MAX_DEAD_LETTER_ORIGINAL_BYTES,
    TRACE_HEADER,
    Failure,
    decode_record,
    encode_json,
    propagate_headers,
    start_producer_patiently,
)
from services.common.logging import JsonFormatter, configure_logging
from services.common.metrics import ServiceMetrics
from services.common.settings import KafkaSettings, TopicNames


def record(value: bytes | None, **extra: object) -> SimpleNamespace:
    fields = {"topic": "t", "partition": 1, "offset": 7, "key": b"k", "headers": []}
    fields.update(extra)
    return SimpleNamespace(value=value, **fields)


def test_kafka_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka-1:9092,kafka-2:9092")
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "svc")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "hunter2")
    settings = KafkaSettings()
    options = settings.client_options()
    assert options["bootstrap_servers"] == "kafka-1:9092,kafka-2:9092"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_password"] == "hunter2"
    assert "hunter2" not in repr(settings)


def test_sasl_password_is_never_in_the_settings_repr() -> None:
    settings = KafkaSettings(sasl_password=SecretStr("s3cret"))
    assert "s3cret" not in str(settings) and "s3cret" not in repr(settings)


def test_topic_names_can_be_overridden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WIREWATCH_TOPIC_EVENTS", "events.side")
    assert TopicNames().events == "events.side"
    assert TopicNames.dlq("events.side") == "events.side.dlq"


def test_invalid_json_becomes_a_dead_letter_with_the_original_bytes() -> None:
    raw = b"{not json"
    outcome = decode_record(record(raw), "feed_entry.v1")
    assert isinstance(outcome, Failure)
    assert outcome.reason == "invalid_json"
    message = outcome.dead_letter(service="test", record=record(raw)).to_message()
    assert base64.b64decode(str(message["original_b64"])) == raw
    assert (message["topic"], message["partition"], message["offset"]) == ("t", 1, 7)


def test_a_huge_message_gets_a_dead_letter_small_enough_to_send() -> None:
    raw = b"\xff" + b"x" * (3 * 1024 * 1024)
    outcome = decode_record(record(raw), "feed_entry.v1")
    assert isinstance(outcome, Failure)
    message = outcome.dead_letter(service="test", record=record(raw)).to_message()
    kept = base64.b64decode(str(message["original_b64"]))
    assert kept == raw[: len(kept)] and len(kept) == MAX_DEAD_LETTER_ORIGINAL_BYTES
    assert message["details"] == {"original_bytes": len(raw), "original_truncated": True}
    assert len(encode_json(message)) < 2 * 1024 * 1024  # under the producers' 4 MiB cap
    schemas.validate(schemas.DEAD_LETTER, message)


def test_schema_violation_becomes_a_dead_letter_naming_the_problem() -> None:
    outcome = decode_record(record(b'{"schema": "feed_entry.v1"}'), "feed_entry.v1")
    assert isinstance(outcome, Failure)
    assert outcome.reason == "schema_invalid"
    assert "entry_id" in outcome.error


def test_a_json_array_is_not_a_message() -> None:
    outcome = decode_record(record(b"[1, 2]"), "feed_entry.v1")
    assert isinstance(outcome, Failure) and "JSON object" in outcome.error


def test_propagated_headers_keep_trace_and_first_seen_and_drop_the_rest() -> None:
    incoming = [(TRACE_HEADER, b"abc"), (FIRST_SEEN_HEADER, b"1.5"), ("other", b"x")]
    assert propagate_headers(incoming) == [(TRACE_HEADER, b"abc"), (FIRST_SEEN_HEADER, b"1.5")]
    fresh = propagate_headers(None)
    assert fresh[0][0] == TRACE_HEADER and len(fresh[0][1]) == 32


def test_json_log_lines_carry_severity_name_message_and_extras() -> None:
    entry = logging.LogRecord("svc.x", logging.WARNING, __file__, 1, "bad %s", ("feed",), None)
    entry.feed = "http://example.org/rss"
    line = json.loads(JsonFormatter().format(entry))
    assert line["severity"] == "WARNING"
    assert line["name"] == "svc.x"
    assert line["message"] == "bad feed"
    assert line["feed"] == "http://example.org/rss"


async def test_a_lazily_started_producer_waits_out_an_unreachable_broker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two failed starts (broker down), then one that works: the caller gets that producer."""
    attempts: list[Any] = []

    class FakeProducer:
        def __init__(self) -> None:
            self.started = self.stopped = False
            attempts.append(self)

        async def start(self) -> None:
            if len(attempts) < 3:
                raise KafkaConnectionError("Unable to bootstrap")
            self.started = True

        async def stop(self) -> None:
            self.stopped = True

    monkeypatch.setattr(kafka_module, "make_producer", lambda _kafka: FakeProducer())
    producer = await start_producer_patiently(KafkaSettings(), service="test", first_delay=0.01)
    assert producer is attempts[-1] and producer.started and len(attempts) == 3
    assert all(failed.stopped for failed in attempts[:2])


def test_client_libraries_log_warnings_unless_asked_for_more(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level, logging.getLogger("faust").level
    try:
        monkeypatch.delenv("WIREWATCH_LIBRARY_LOG_LEVEL", raising=False)
        configure_logging("INFO", json_lines=True)
        assert logging.getLogger("faust").level == logging.WARNING
        assert logging.getLogger("aiokafka").level == logging.WARNING
        monkeypatch.setenv("WIREWATCH_LIBRARY_LOG_LEVEL", "info")
        configure_logging("INFO", json_lines=True)
        assert logging.getLogger("faust").level == logging.INFO
        # Never below the service's own level.
        configure_logging("ERROR", json_lines=True)
        assert logging.getLogger("faust").level == logging.ERROR
        monkeypatch.setenv("WIREWATCH_LIBRARY_LOG_LEVEL", "chatty")
        configure_logging("INFO", json_lines=True)
        assert logging.getLogger("faust").level == logging.WARNING
    finally:
        root.handlers[:], level, faust_level = saved
        root.setLevel(level)
        logging.getLogger("faust").setLevel(faust_level)


def test_consumer_lag_of_a_partition_taken_away_is_forgotten() -> None:
    registry = CollectorRegistry()
    metrics = ServiceMetrics("dedup", registry=registry)
    first, second = TopicPartition("articles.extracted", 0), TopicPartition("articles.extracted", 1)
    metrics.set_consumer_lag({first: 3, second: 5})
    metrics.set_consumer_lag({first: 0})

    def lag(partition: str) -> float | None:
        labels = {"topic": "articles.extracted", "partition": partition}
        return registry.get_sample_value("wirewatch_dedup_consumer_lag_messages", labels)

    assert lag("0") == 0 and lag("1") is None
