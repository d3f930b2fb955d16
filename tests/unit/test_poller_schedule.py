"""Adaptive intervals: publishing rate, backoff with jitter, server hints."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from services.poller.schedule import (
    IntervalBounds,
    cache_max_age,
    failure_backoff,
    next_delay,
    publishing_interval,
)

BOUNDS = IntervalBounds(min_seconds=300, max_seconds=86400)
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_busy_feed_is_polled_more_often_than_a_quiet_one() -> None:
    busy = [NOW - timedelta(hours=h) for h in range(0, 168, 2)]  # 84 a week
    quiet = [NOW - timedelta(days=2)]  # 1 a week
    assert publishing_interval(busy, now=NOW, bounds=BOUNDS) == 7 * 86400 / 84
    assert publishing_interval(quiet, now=NOW, bounds=BOUNDS) == 86400  # clamped to the max
    assert publishing_interval(busy, now=NOW, bounds=BOUNDS) < publishing_interval(
        quiet, now=NOW, bounds=BOUNDS
    )


def test_feed_without_recent_or_dated_entries_gets_the_maximum() -> None:
    old = [NOW - timedelta(days=30), None]
    assert publishing_interval(old, now=NOW, bounds=BOUNDS) == BOUNDS.max_seconds


def test_very_busy_feed_is_clamped_to_the_minimum() -> None:
    flood = [NOW - timedelta(minutes=m) for m in range(5000)]
    assert publishing_interval(flood, now=NOW, bounds=BOUNDS) == BOUNDS.min_seconds


def test_failure_backoff_grows_exponentially_with_jitter_within_bounds() -> None:
    rng = random.Random(7)  # noqa: S311 - jitter, not security
    first = [failure_backoff(1, bounds=BOUNDS, rng=rng) for _ in range(50)]
    fourth = [failure_backoff(4, bounds=BOUNDS, rng=rng) for _ in range(50)]
    many = [failure_backoff(40, bounds=BOUNDS, rng=rng) for _ in range(50)]
    assert all(300 <= d <= 600 for d in first)
    assert all(2400 <= d <= 4800 for d in fourth)
    assert all(43200 <= d <= 86400 for d in many)
    assert len(set(fourth)) > 40  # jittered, not lockstep


def test_server_hints_push_the_next_poll_back() -> None:
    assert next_delay(600, bounds=BOUNDS, max_age=3600) == 3600
    assert next_delay(600, bounds=BOUNDS, ttl=1200) == 1200
    assert next_delay(600, bounds=BOUNDS, max_age=10**9) == BOUNDS.max_seconds
    assert next_delay(600, bounds=BOUNDS, retry_after=200_000) == 200_000
    assert next_delay(10, bounds=BOUNDS) == BOUNDS.min_seconds


def test_cache_control_max_age_is_read() -> None:
    assert cache_max_age("public, max-age=900") == 900
    assert cache_max_age("s-maxage=60, must-revalidate") == 60
    assert cache_max_age("no-store, max-age=900") is None
    assert cache_max_age("no-cache") is None
    assert cache_max_age(None) is None
