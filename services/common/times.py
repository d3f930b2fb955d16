"""Timestamps as the messages carry them: ISO 8601 text, always read as aware UTC datetimes."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_utc(moment: datetime) -> str:
    """``moment`` as the messages write it: UTC, milliseconds, a ``Z`` for the zone."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utc_now_iso() -> str:
    return iso_utc(datetime.now(UTC))


def parse_timestamp(value: str | None) -> datetime | None:
    """An ISO 8601 date or date-time as an aware datetime (UTC when no zone is given).

    None when absent or unreadable: feeds and pages carry malformed dates often enough that a
    bad one must not fail the message.
    """
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
