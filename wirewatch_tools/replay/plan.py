"""What a replay will do, computed without Kafka: ranges, offset look-up by time, resume state.

The Kafka shell (``app.py``) feeds this module offsets and records and acts on its answers, so
every decision that could copy a message twice or miss one is made here and tested without a
broker.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from services.common.ranges import CopyPlan, PartitionRange, ReplayError

# Provenance of a copied message: which replay job copied it, and from where. A resumed copy
# reads these back from the target to continue exactly after the last copied record.
JOB_HEADER = "wirewatch-replay-job"
SOURCE_HEADER = "wirewatch-replay-source"
REPLAY_HEADERS = (JOB_HEADER, SOURCE_HEADER)


class GroupActiveError(ReplayError):
    """The consumer group still has live members, so rewinding it now would be overwritten."""


def parse_instant(text: str) -> int:
    """An ISO 8601 date or date-time as epoch milliseconds; no zone means UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise ReplayError(f"not an ISO 8601 date-time: {text!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def format_instant(epoch_ms: int) -> str:
    moment = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_offsets(text: str) -> dict[int, int]:
    """``"0:120,1:80"`` as ``{0: 120, 1: 80}``: an offset for each named partition."""
    offsets: dict[int, int] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        partition, sep, offset = part.partition(":")
        if not sep:
            raise ReplayError(f"expected PARTITION:OFFSET, got {part!r} in {text!r}")
        try:
            number, position = int(partition), int(offset)
        except ValueError as exc:
            raise ReplayError(f"expected integers in {part!r}") from exc
        if number < 0 or position < 0:
            raise ReplayError(f"partitions and offsets are not negative: {part!r}")
        if number in offsets:
            raise ReplayError(f"partition {number} given twice in {text!r}")
        offsets[number] = position
    if not offsets:
        raise ReplayError(f"no PARTITION:OFFSET in {text!r}")
    return offsets


def job_id(source: str, target: str, request: str) -> str:
    """The same copy request gets the same job, which is how a rerun finds what to resume."""
    digest = hashlib.sha256(f"{source}\n{target}\n{request}".encode()).hexdigest()
    return digest[:16]


def provenance_headers(
    headers: Iterable[tuple[str, bytes]] | None, *, job: str, partition: int, offset: int
) -> list[tuple[str, bytes]]:
    """The record's own headers, then which job copied it from which partition and offset.

    Provenance left by an earlier copy is replaced, so a copy of a copy names its own source.
    """
    kept = [(k, v) for k, v in headers or () if k not in REPLAY_HEADERS]
    kept.append((JOB_HEADER, job.encode()))
    kept.append((SOURCE_HEADER, f"{partition}:{offset}".encode()))
    return kept


def copied_from(headers: Iterable[tuple[str, bytes]] | None, job: str) -> tuple[int, int] | None:
    """(source partition, source offset) when the headers say ``job`` copied this record."""
    found_job = None
    source = None
    for key, value in headers or ():
        if key == JOB_HEADER:
            found_job = value.decode(errors="replace")
        elif key == SOURCE_HEADER:
            source = value.decode(errors="replace")
    if found_job != job or source is None:
        return None
    partition, _, offset = source.partition(":")
    try:
        return int(partition), int(offset)
    except ValueError:
        return None


@dataclass(frozen=True)
class Checkpoint:
    """Progress of one copy job, kept in a compacted topic under the job id.

    ``next_offsets`` are source positions whose records are all acknowledged in the target;
    ``target_offsets`` are the target's end offsets read after that acknowledgement. Anything
    the job copied beyond the checkpoint therefore lies at or after ``target_offsets``, and a
    resumed job finds it there by its provenance headers instead of copying it again.
    """

    job: str
    plan: CopyPlan
    next_offsets: dict[int, int]
    target_offsets: dict[int, int]
    done: bool = False
    copied: int = 0
    skipped: int = 0
    updated_at: str = field(default_factory=lambda: format_instant(_now_ms()))

    def to_json(self) -> bytes:
        body: dict[str, Any] = {
            "job": self.job,
            "source": self.plan.source,
            "target": self.plan.target,
            "since_ms": self.plan.since_ms,
            "until_ms": self.plan.until_ms,
            "ranges": [[r.partition, r.start, r.end] for r in self.plan.ranges],
            "next_offsets": {str(p): o for p, o in sorted(self.next_offsets.items())},
            "target_offsets": {str(p): o for p, o in sorted(self.target_offsets.items())},
            "done": self.done,
            "copied": self.copied,
            "skipped": self.skipped,
            "updated_at": self.updated_at,
        }
        return json.dumps(body, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Checkpoint:
        try:
            body = json.loads(raw)
            plan = CopyPlan(
                source=body["source"],
                target=body["target"],
                ranges=tuple(PartitionRange(int(p), int(s), int(e)) for p, s, e in body["ranges"]),
                since_ms=body.get("since_ms"),
                until_ms=body.get("until_ms"),
            )
            return cls(
                job=body["job"],
                plan=plan,
                next_offsets={int(p): int(o) for p, o in body["next_offsets"].items()},
                target_offsets={int(p): int(o) for p, o in body["target_offsets"].items()},
                done=bool(body.get("done", False)),
                copied=int(body.get("copied", 0)),
                skipped=int(body.get("skipped", 0)),
                updated_at=str(body.get("updated_at", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ReplayError(f"unreadable replay checkpoint: {exc}") from exc

    def remaining(self) -> int:
        return sum(
            max(0, r.end - self.next_offsets.get(r.partition, r.start)) for r in self.plan.ranges
        )


def start_checkpoint(job: str, plan: CopyPlan, target_offsets: Mapping[int, int]) -> Checkpoint:
    return Checkpoint(
        job=job,
        plan=plan,
        next_offsets={r.partition: r.start for r in plan.ranges},
        target_offsets=dict(target_offsets),
    )


def advance_past_copied(checkpoint: Checkpoint, copied: Iterable[tuple[int, int]]) -> Checkpoint:
    """Move each partition's position past the records found already copied in the target.

    ``copied`` holds the (source partition, source offset) pairs read back from the target
    after the checkpoint's ``target_offsets``.
    """
    positions = dict(checkpoint.next_offsets)
    # The scan may start before the checkpoint's true target end (Tansu understates it), so
    # only records past the checkpoint's positions are new.
    new = {
        (partition, offset)
        for partition, offset in copied
        if partition in positions and offset >= checkpoint.next_offsets[partition]
    }
    for partition, offset in new:
        positions[partition] = max(positions[partition], offset + 1)
    return replace(checkpoint, next_offsets=positions, copied=checkpoint.copied + len(new))


def latest_checkpoints(values: Iterable[tuple[bytes | None, bytes | None]]) -> dict[str, bytes]:
    """The last value per job key, as a compacted topic would keep it."""
    latest: dict[str, bytes] = {}
    for key, value in values:
        if key is None:
            continue
        if value is None:
            latest.pop(key.decode(errors="replace"), None)
        else:
            latest[key.decode(errors="replace")] = value
    return latest


def format_plan(plan: CopyPlan, job: str) -> list[str]:
    """The table ``--dry-run`` prints: per partition start, end and message count."""
    lines = [f"copy {plan.source} -> {plan.target} (job {job})"]
    if plan.since_ms is not None or plan.until_ms is not None:
        since = format_instant(plan.since_ms) if plan.since_ms is not None else "beginning"
        until = format_instant(plan.until_ms) if plan.until_ms is not None else "now"
        lines.append(f"time range [{since}, {until})")
    lines.append(f"{'partition':>9} {'start':>12} {'end':>12} {'messages':>10}")
    for r in plan.ranges:
        lines.append(f"{r.partition:>9} {r.start:>12} {r.end:>12} {r.count:>10}")
    lines.append(f"{'total':>9} {'':>12} {'':>12} {plan.total:>10}")
    return lines


@dataclass(frozen=True)
class OffsetChange:
    """One partition of a group rewind: committed offset before, after, and the one asked for."""

    topic: str
    partition: int
    before: int | None
    after: int | None
    requested: int

    @property
    def applied(self) -> bool:
        return self.after == self.requested


def format_offset_changes(group: str, changes: Sequence[OffsetChange]) -> list[str]:
    """The before/after table a rewind prints; partitions it could not move are marked."""
    header = f"{'topic':30} {'partition':>9} {'before':>10} {'after':>10} {'moved':>8}"
    lines = [f"group {group}", header]
    for c in changes:
        before = "-" if c.before is None else str(c.before)
        after = "-" if c.after is None else str(c.after)
        moved = "" if c.before is None or c.after is None else f"{c.after - c.before:+d}"
        note = "" if c.applied else f"  NOT REWOUND (wanted {c.requested})"
        lines.append(f"{c.topic:30} {c.partition:>9} {before:>10} {after:>10} {moved:>8}{note}")
    return lines


def _now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)
