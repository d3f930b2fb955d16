"""The extractor shell with fake Kafka: per-partition order and commit-after-ack.

Fakes stand in for the consumer and producer so the test controls timing exactly; the
real-broker behaviour is covered in tests/integration/test_extractor_*.py.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from aiokafka import ConsumerRecord, TopicPartition
from prometheus_client import CollectorRegistry

from services.common.kafka import Failure
from services.common.messages import Article
from services.common.shutdown import GracefulStop
from services.common.workers import WorkerPool
from services.extractor import app
from services.extractor.app import Extractor, ExtractorMetrics, ExtractorSettings, Output
from services.extractor.fetch import FetchedPage

TP = TopicPartition("entries", 0)


def record(offset: int) -> ConsumerRecord:
    return ConsumerRecord(
        topic="entries", partition=0, offset=offset, timestamp=0, timestamp_type=0,
        key=f"k{offset}".encode(), value=b"{}", checksum=None, serialized_key_size=2,
        serialized_value_size=2, headers=[],
    )  # fmt: skip


class FakeConsumer:
    def __init__(self, records: list[ConsumerRecord]) -> None:
        self.pending = records
        self.commits: list[dict[TopicPartition, int]] = []

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[Any, Any]:
        batch, self.pending = self.pending[:max_records], self.pending[max_records:]
        if not batch:
            await asyncio.sleep(timeout_ms / 1000)
            return {}
        return {TP: batch}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    def highwater(self, _: TopicPartition) -> int | None:
        return None


class FakeProducer:
    """Records sends; acknowledgements are released by the test."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.acks: list[asyncio.Future[None]] = []

    async def send(self, topic: str, message: Any, *, key: bytes, headers: Any) -> Any:
        self.sent.append(key)
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.acks.append(ack)
        return ack


class ScriptedExtractor(Extractor):
    """Each entry 'takes' the time the test gives it, then becomes an article."""

    delays = {0: 0.3, 1: 0.0, 2: 0.1}

    async def _work(self, rec: ConsumerRecord) -> Output:
        await asyncio.sleep(self.delays[rec.offset])
        url = f"https://news.example/{rec.offset}"
        article = Article(
            article_id=f"{rec.offset:032x}",
            url=url,
            title="",
            text=url,
            content_hash=f"{rec.offset:032x}",
            fetched_at="2026-01-01T00:00:00.000Z",
        )
        return Output("articles", article)


async def wait_until(condition: Any, timeout: float = 5) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def test_outputs_leave_in_offset_order_and_only_acknowledged_offsets_are_committed() -> None:
    consumer = FakeConsumer([record(0), record(1), record(2)])
    producer = FakeProducer()
    stop = GracefulStop()
    settings = ExtractorSettings(commit_interval_seconds=0.01, workers=1)
    extractor = ScriptedExtractor(
        settings,
        consumer=consumer,
        producer=producer,  # type: ignore[arg-type]
        session=None,
        pool=WorkerPool(1, preload=[]),
        metrics=ExtractorMetrics(CollectorRegistry()),
        stop=stop,
    )
    running = asyncio.create_task(extractor.run())
    try:
        await wait_until(lambda: len(producer.sent) == 3)
        # entry 0 was slowest, yet it is sent first: per-partition order holds
        assert producer.sent == [b"k0", b"k1", b"k2"]
        await asyncio.sleep(0.05)
        assert consumer.commits == []  # nothing acknowledged, nothing committed
        producer.acks[1].set_result(None)
        producer.acks[2].set_result(None)
        await asyncio.sleep(0.05)
        assert consumer.commits == []  # offset 0 still unacknowledged blocks 1 and 2
        producer.acks[0].set_result(None)
        await wait_until(lambda: consumer.commits)
        assert consumer.commits[-1] == {TP: 3}
    finally:
        stop.request()
        await asyncio.wait_for(running, 5)
        extractor.pool.shutdown()


MARKER = Path(tempfile.gettempdir()) / f"wirewatch-crash-once-{os.getpid()}"


def crash_once(body: bytes, *, url: str | None, content_type: str | None) -> Failure:
    """Stands in for a page that kills its worker process the first time only."""
    if not MARKER.exists():
        MARKER.touch()
        os._exit(1)
    return Failure("empty_extraction", f"survived: {len(body)} bytes")


def fork_pool(workers: int) -> WorkerPool:
    """Forked, not served: the workers must see the monkeypatched ``extract_page``."""
    return WorkerPool(workers, preload=[], start_method="fork")


async def test_a_dead_worker_is_replaced_and_the_entry_retried_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(app, "extract_page", crash_once)
    MARKER.unlink(missing_ok=True)
    extractor = Extractor(
        ExtractorSettings(workers=1),
        consumer=FakeConsumer([]),
        producer=FakeProducer(),  # type: ignore[arg-type]
        session=None,
        pool=fork_pool(1),
        metrics=ExtractorMetrics(CollectorRegistry()),
        stop=GracefulStop(),
    )
    first_executor = extractor.pool.executor
    page = FetchedPage("http://x/", 200, "text/html", b"<html>", 0.0, 0)
    try:
        outcome = await extractor._extract(page)
    finally:
        extractor.pool.shutdown()
        MARKER.unlink(missing_ok=True)
    assert isinstance(outcome, Failure) and outcome.error == "survived: 6 bytes"
    assert extractor.pool.executor is not first_executor
