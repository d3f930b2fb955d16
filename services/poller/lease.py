"""One poller at a time per state topic: a lease kept as records on the state topic itself.

Two pollers on one feed list would poll every feed twice and, each with its own memory of what
it sent, send every new entry twice. So a poller polls only while it holds the lease: records
under ``LEASE_KEY`` in the (one-partition) state topic, which every poller reads in the same
order. A record from the holder renews the lease or releases it (a graceful stop); a record
from anyone else takes it only if, when that record was written, the holder's lease had ended
or been released. Two pollers claiming at once therefore agree: the first claim in the log
wins, and the second poller sees that it lost and stands by. A standby polls nothing; it takes
over when the holder releases the lease (at once) or stops renewing it (after ``seconds``).

The times compared are the writers' clocks (``time.time``): pollers on different hosts need
clocks that agree to well within ``seconds``, as NTP gives.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from services.common.errors import WirewatchError
from services.common.kafka import make_consumer
from services.common.settings import KafkaSettings
from services.common.shutdown import GracefulStop
from services.poller.state import LEASE_KEY

logger = logging.getLogger(__name__)

LEASE_VERSION = 1


class LeaseLostError(WirewatchError):
    """Another poller took the lease (this one could not renew it in time)."""


@dataclass(frozen=True)
class LeaseRecord:
    """One lease record: a claim or renewal until ``expires_at``, or a release (``0``)."""

    owner: str
    written_at: float
    expires_at: float

    @property
    def released(self) -> bool:
        return self.expires_at <= self.written_at

    def to_json(self) -> bytes:
        document = {"version": LEASE_VERSION, **self.__dict__}
        return json.dumps(document, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> LeaseRecord:
        document = json.loads(raw)
        if not isinstance(document, dict) or document.get("version") != LEASE_VERSION:
            raise ValueError("not a lease record of a known version")
        owner, written, expires = (document.get(k) for k in ("owner", "written_at", "expires_at"))
        if not isinstance(owner, str) or not all(
            isinstance(t, int | float) and not isinstance(t, bool) for t in (written, expires)
        ):
            raise ValueError("lease record of the wrong shape")
        return cls(owner, float(written), float(expires))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Holder:
    owner: str
    expires_at: float


def next_holder(holder: Holder | None, record: LeaseRecord) -> Holder | None:
    """Who holds the lease after ``record``, given who held it before (the rule above)."""
    if (
        holder is not None
        and record.owner != holder.owner
        and record.written_at < holder.expires_at
    ):
        return holder  # a claim while the lease was held by someone else: it lost
    return None if record.released else Holder(record.owner, record.expires_at)


def default_owner() -> str:
    """Host and process, to name the holder in the other pollers' logs; the suffix tells a
    restarted process from its predecessor with the same pid."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class PollerLease:
    """This poller's view of the lease, and its claims, renewals and release."""

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        producer: AIOKafkaProducer,
        *,
        seconds: float,
        owner: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.kafka = kafka
        self.partition = TopicPartition(topic, 0)
        self.producer = producer
        self.seconds = seconds
        self.owner = owner or default_owner()
        self.clock = clock
        self.holder: Holder | None = None
        # Until when this poller's own lease is confirmed (read back from the log).
        self.held_until = 0.0
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        self._consumer = make_consumer(self.kafka, group_id=None)
        await self._consumer.start()
        self._consumer.assign([self.partition])
        await self._consumer.seek_to_beginning(self.partition)

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    @property
    def renew_every(self) -> float:
        return self.seconds / 4

    def may_poll(self) -> bool:
        """Held, with half the lease still to run: a poll started now ends well inside it."""
        return self.held_until - self.clock() > self.seconds / 2

    async def acquire(self, stop: GracefulStop) -> bool:
        """Stand by until this poller holds the lease; False if asked to stop first."""
        told: str | None = None
        while not stop.stopping:
            try:
                if await self._try_to_take():
                    return True
            except (KafkaError, OSError) as exc:
                logger.warning("could not read or claim the poller lease (retrying): %s", exc)
            holder = self.holder
            if holder is not None and holder.owner != self.owner and told != holder.owner:
                told = holder.owner
                logger.warning(
                    "another poller (%s) holds the lease on %s until %s: standing by, polling "
                    "nothing, until it stops or its lease lapses (a second poller on one feed "
                    "list would send every entry twice)",
                    holder.owner,
                    self.partition.topic,
                    time.strftime("%H:%M:%S", time.localtime(holder.expires_at)),
                )
            if await stop.wait(min(1.0, self.renew_every)):
                return False
        return False

    async def _try_to_take(self) -> bool:
        await self._read(timeout=1.0)
        holder, now = self.holder, self.clock()
        if holder is not None and holder.expires_at > now:
            return False
        if await self._write(now + self.seconds):
            logger.info("holding the poller lease on %s (%s)", self.partition.topic, self.owner)
            return True
        return False

    async def keep(self, stop: GracefulStop) -> None:
        """Renew the lease until ``stop``; raises ``LeaseLostError`` if another poller took it."""
        while not await stop.wait(self.renew_every):
            try:
                await self._write(self.clock() + self.seconds)
            except LeaseLostError:
                raise
            except (KafkaError, OSError) as exc:  # the next renewal tries again
                logger.warning("could not renew the poller lease: %s", exc)

    async def wait_until_held(self, stop: GracefulStop) -> bool:
        """Before each poll: wait while the lease is not confirmed far enough ahead."""
        while not self.may_poll():
            if await stop.wait(0.2):
                return False
        return not stop.stopping

    async def release(self) -> None:
        """Hand the lease over at once (graceful stop), so a standby need not wait it out."""
        if self.held_until <= self.clock():
            return
        now = self.clock()
        record = LeaseRecord(self.owner, now, now)
        try:
            await self.producer.send_and_wait(
                self.partition.topic, record.to_json(), key=LEASE_KEY, partition=0
            )
        except KafkaError as exc:
            logger.warning("could not release the poller lease (it lapses by itself): %s", exc)
        self.held_until = 0.0

    async def _write(self, expires_at: float) -> bool:
        """Claim or renew until ``expires_at``; True if the log says this poller holds it."""
        record = LeaseRecord(self.owner, self.clock(), expires_at)
        metadata = await self.producer.send_and_wait(
            self.partition.topic, record.to_json(), key=LEASE_KEY, partition=0
        )
        if not await self._read(until_offset=metadata.offset, timeout=self.seconds / 2):
            return False  # not confirmed: polls pause once the last confirmed lease runs low
        if self.holder is not None and self.holder.owner == self.owner:
            self.held_until = self.holder.expires_at
            return True
        if self.held_until > 0:
            self.held_until = 0.0
            owner = self.holder.owner if self.holder else "nobody"
            raise LeaseLostError(
                f"the poller lease on {self.partition.topic} went to {owner} while this poller "
                f"could not renew it"
            )
        return False

    async def _read(self, *, until_offset: int | None = None, timeout: float) -> bool:
        """Apply the lease records that arrive within ``timeout`` (or up to ``until_offset``)."""
        if self._consumer is None:
            raise RuntimeError("start() the lease before reading it")
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if until_offset is not None and await self._consumer.position(self.partition) > (
                until_offset
            ):
                return True
            if left <= 0:
                return until_offset is None
            batch = await self._consumer.getmany(
                self.partition, timeout_ms=int(min(left, 0.5) * 1000)
            )
            for record in batch.get(self.partition, []):
                if record.key != LEASE_KEY or record.value is None:
                    continue
                try:
                    lease = LeaseRecord.from_json(record.value)
                except ValueError as exc:
                    logger.warning("ignoring an unreadable poller lease record: %s", exc)
                    continue
                self.holder = next_holder(self.holder, lease)
            if until_offset is None and not batch:
                return True
