"""Per-feed state (seen entries, HTTP validators, schedule) kept in a compacted Kafka topic.

One record per feed, keyed by the feed's configured URL, holding the whole state as JSON: a
compacted topic then keeps exactly the latest state of every feed, survives a restart of the
poller (and, with durable broker storage, of the broker) and is read back in full at start-up.
Seen entries are stored as short hashes of their identity and bounded per feed.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition

from services.common.kafka import end_offsets, make_consumer
from services.common.settings import KafkaSettings
from services.common.topics import TopicSpec

logger = logging.getLogger(__name__)

STATE_VERSION = 1
# Fields that change at every poll; losing them costs one early poll after a restart.
VOLATILE_FIELDS = ("last_success", "last_outcome", "next_poll_at", "interval_seconds")


def state_topic_spec(name: str) -> TopicSpec:
    """One partition is plenty (one small record per feed) and keeps the read-back ordered."""
    return TopicSpec(name, 1, {"cleanup.policy": "compact"})


def seen_key(entry_id: str) -> str:
    """96 bits of SHA-256: small to store, collisions negligible within one feed's window."""
    return hashlib.sha256(entry_id.encode("utf-8")).hexdigest()[:24]


@dataclass
class FeedState:
    """Everything the poller must remember about one feed between polls and restarts."""

    feed_key: str
    url: str
    etag: str | None = None
    last_modified: str | None = None
    seen: list[str] = field(default_factory=list)
    consecutive_failures: int = 0
    # When the current run of failed polls began (None while the feed works): saved, so that
    # how long a feed has been failing survives restarts.
    failing_since: float | None = None
    gone: bool = False
    last_success: float | None = None
    last_outcome: str | None = None
    next_poll_at: float | None = None
    interval_seconds: float | None = None

    def __post_init__(self) -> None:
        self._seen_set = set(self.seen)

    def record_failure(self, now: float) -> None:
        self.consecutive_failures += 1
        if self.failing_since is None:
            self.failing_since = now

    def record_success(self, now: float) -> None:
        self.consecutive_failures = 0
        self.failing_since = None
        self.last_success = now

    def has_seen(self, entry_id: str) -> bool:
        return seen_key(entry_id) in self._seen_set

    def remember(self, entry_ids_in_feed: Iterable[str], *, bound: int) -> None:
        """Keep the entries now in the feed plus the most recent older ones, up to ``bound``.

        Entries still in the feed are always kept (whatever the bound) so that they can never
        come back as "new"; older ones go first.
        """
        current = list(dict.fromkeys(seen_key(entry_id) for entry_id in entry_ids_in_feed))
        current_set = set(current)
        older = [key for key in self.seen if key not in current_set]
        self.seen = current + older[: max(0, bound - len(current))]
        self._seen_set = set(self.seen)

    def durable_view(self) -> bytes:
        """The state without its clock fields: when this is unchanged, a write can be skipped."""
        document = asdict(self)
        for volatile in VOLATILE_FIELDS:
            document.pop(volatile, None)
        return json.dumps(document, separators=(",", ":")).encode("utf-8")

    def to_json(self) -> bytes:
        document: dict[str, Any] = {"version": STATE_VERSION, **asdict(self)}
        return json.dumps(document, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_json(cls, raw: bytes) -> FeedState:
        document = json.loads(raw)
        if not isinstance(document, dict) or document.get("version") != STATE_VERSION:
            raise ValueError("unknown poller state version")
        document.pop("version")
        known = {name for name in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in document.items() if k in known})


class StateStore:
    """Reads every feed's latest state from the topic and writes new states to it."""

    def __init__(self, kafka: KafkaSettings, topic: str, producer: AIOKafkaProducer) -> None:
        self.kafka = kafka
        self.topic = topic
        self.producer = producer

    async def load(self) -> dict[str, FeedState]:
        """Read the topic from the beginning to its current end; the last record per key wins."""
        consumer = make_consumer(self.kafka, group_id=None, enable_auto_commit=False)
        await consumer.start()
        states: dict[str, FeedState] = {}
        try:
            await consumer.topics()  # refreshes the metadata
            partitions = consumer.partitions_for_topic(self.topic) or set()
            assigned = [TopicPartition(self.topic, p) for p in sorted(partitions)]
            if not assigned:
                return states
            ends = await end_offsets(consumer, assigned)
            consumer.assign(assigned)
            await consumer.seek_to_beginning(*assigned)
            remaining = {tp for tp in assigned if ends[tp] > 0}
            while remaining:
                batch = await consumer.getmany(*remaining, timeout_ms=1000)
                for records in batch.values():
                    for record in records:
                        self._apply(states, record.key, record.value)
                for tp in list(remaining):
                    if await consumer.position(tp) >= ends[tp]:
                        remaining.discard(tp)
        finally:
            await consumer.stop()
        logger.info("loaded the state of %d feeds from %s", len(states), self.topic)
        return states

    @staticmethod
    def _apply(states: dict[str, FeedState], key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        feed_key = key.decode("utf-8", "replace")
        if value is None:
            states.pop(feed_key, None)
            return
        try:
            states[feed_key] = FeedState.from_json(value)
        except (ValueError, TypeError) as exc:
            logger.warning("ignoring unreadable state for %s: %s", feed_key, exc)

    async def save(self, state: FeedState) -> Any:
        """Send the feed's state; returns the future of the broker's acknowledgement."""
        return await self.producer.send(
            self.topic, state.to_json(), key=state.feed_key.encode("utf-8")
        )
