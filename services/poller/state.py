"""Per-feed state (seen entries, HTTP validators, schedule) kept in a compacted Kafka topic.

One record per feed, keyed by the feed's configured URL, holding the whole state as JSON: a
compacted topic then keeps exactly the latest state of every feed, survives a restart of the
poller (and, with durable broker storage, of the broker) and is read back in full at start-up.
Seen entries are stored as short hashes of their identity and bounded per feed.

A record that cannot be read back (not JSON, an unknown version, a field of the wrong type) does
not stop the poller: the feed is treated as new, except that the entries the entries topic already
holds from that feed are marked seen first (:meth:`StateStore.sent_entry_ids`), so nothing already
sent is sent again. The same topic holds the poller's lease (``services.poller.lease``) under a
key no feed URL can have.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from services.common.kafka import end_offsets, make_consumer
from services.common.settings import KafkaSettings
from services.common.topics import TopicSpec

logger = logging.getLogger(__name__)

STATE_VERSION = 1
# The lease record's key: feed keys are http(s) URLs, so this one cannot be a feed's.
LEASE_KEY = b"poller-lease"
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
        """The state in ``raw``; ``ValueError`` saying what is wrong unless it is all sound.

        Every field's type is checked here, because a state that loads with a string where a
        count belongs would only fail later, inside a poll, every poll.
        """
        try:
            document = json.loads(raw)
        except ValueError as exc:  # UnicodeDecodeError included
            raise ValueError(f"not JSON: {exc}") from exc
        if not isinstance(document, dict):
            raise ValueError(f"not a JSON object but {type(document).__name__}")
        if document.get("version") != STATE_VERSION:
            raise ValueError(f"unknown poller state version {document.get('version')!r}")
        document.pop("version")
        known = {name for name in cls.__dataclass_fields__}
        fields = {k: v for k, v in document.items() if k in known}
        if problems := _shape_problems(fields):
            raise ValueError("wrong shape: " + "; ".join(problems))
        return cls(**fields)


_TEXT_FIELDS = ("feed_key", "url")
_OPTIONAL_TEXT_FIELDS = ("etag", "last_modified", "last_outcome")
_OPTIONAL_TIME_FIELDS = ("failing_since", "last_success", "next_poll_at", "interval_seconds")


def _shape_problems(fields: dict[str, Any]) -> list[str]:
    """What in a decoded state does not have the type :class:`FeedState` gives it."""
    problems = [
        f"{name} must be a non-empty string"
        for name in _TEXT_FIELDS
        if not isinstance(fields.get(name), str) or not fields[name]
    ]
    problems += [
        f"{name} must be a string or null"
        for name in _OPTIONAL_TEXT_FIELDS
        if fields.get(name) is not None and not isinstance(fields[name], str)
    ]
    problems += [
        f"{name} must be a number or null"
        for name in _OPTIONAL_TIME_FIELDS
        if fields.get(name) is not None
        and (isinstance(fields[name], bool) or not isinstance(fields[name], int | float))
    ]
    seen = fields.get("seen", [])
    if not isinstance(seen, list) or not all(isinstance(key, str) for key in seen):
        problems.append("seen must be a list of strings")
    failures = fields.get("consecutive_failures", 0)
    if isinstance(failures, bool) or not isinstance(failures, int) or failures < 0:
        problems.append("consecutive_failures must be a count")
    if not isinstance(fields.get("gone", False), bool):
        problems.append("gone must be true or false")
    return problems


class StateStore:
    """Reads every feed's latest state from the topic and writes new states to it."""

    def __init__(self, kafka: KafkaSettings, topic: str, producer: AIOKafkaProducer) -> None:
        self.kafka = kafka
        self.topic = topic
        self.producer = producer
        # Feed key -> why its latest state record could not be read (filled by ``load``).
        self.unreadable: dict[str, str] = {}

    async def load(self) -> dict[str, FeedState]:
        """Read the topic from the beginning to its current end; the last record per key wins.

        A feed whose last record is unreadable is left out of the result and named in
        ``unreadable``: an older readable record of it would be missing whatever the poller
        sent after writing it."""
        states: dict[str, FeedState] = {}
        self.unreadable = {}

        def apply(record: Any) -> None:
            self._apply(states, record.key, record.value)

        await read_topic_to_end(self.kafka, self.topic, apply)
        logger.info("loaded the state of %d feeds from %s", len(states), self.topic)
        return states

    def _apply(self, states: dict[str, FeedState], key: bytes | None, value: bytes | None) -> None:
        if key is None or key == LEASE_KEY:
            return
        feed_key = key.decode("utf-8", "replace")
        states.pop(feed_key, None)
        self.unreadable.pop(feed_key, None)
        if value is None:
            return
        try:
            states[feed_key] = FeedState.from_json(value)
        except (ValueError, TypeError) as exc:
            self.unreadable[feed_key] = str(exc)

    async def sent_entry_ids(self, entries_topic: str, feed_urls: set[str]) -> dict[str, set[str]]:
        """Feed URL -> the ids of the entries of that feed that ``entries_topic`` holds.

        For feeds whose state is unreadable: reading the whole topic costs one pass over its
        retention, paid only when such a state is found."""
        found: dict[str, set[str]] = {url: set() for url in feed_urls}

        def apply(record: Any) -> None:
            try:
                entry = json.loads(record.value) if record.value is not None else None
            except ValueError:
                return  # poison in the entries topic is the extractor's to dead-letter
            if isinstance(entry, dict) and isinstance(entry.get("entry_id"), str):
                feed_url = entry.get("feed_url")
                if isinstance(feed_url, str) and feed_url in found:
                    found[feed_url].add(entry["entry_id"])

        await read_topic_to_end(self.kafka, entries_topic, apply)
        return found

    async def save(self, state: FeedState) -> Any:
        """Send the feed's state; returns the future of the broker's acknowledgement."""
        return await self.producer.send(
            self.topic, state.to_json(), key=state.feed_key.encode("utf-8")
        )


async def read_topic_to_end(kafka: KafkaSettings, topic: str, apply: Callable[[Any], None]) -> None:
    """Call ``apply`` on every record of ``topic``, from the beginning to the end it has now."""
    consumer = make_consumer(kafka, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()  # refreshes the metadata
        partitions = consumer.partitions_for_topic(topic) or set()
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        if assigned:
            await _read_partitions_to_end(consumer, assigned, apply)
    finally:
        await consumer.stop()


async def _read_partitions_to_end(
    consumer: AIOKafkaConsumer, assigned: list[TopicPartition], apply: Callable[[Any], None]
) -> None:
    ends = await end_offsets(consumer, assigned)
    consumer.assign(assigned)
    await consumer.seek_to_beginning(*assigned)
    remaining = {tp for tp in assigned if ends[tp] > 0}
    while remaining:
        batch = await consumer.getmany(*remaining, timeout_ms=1000)
        for records in batch.values():
            for record in records:
                apply(record)
        for tp in list(remaining):
            if await consumer.position(tp) >= ends[tp]:
                remaining.discard(tp)
