"""When to poll a feed next: pure functions of what the last polls showed.

Modelled on Miniflux's scheduler: the interval is a week divided by the entries published in
the last week, clamped to the configured bounds, and never sooner than the feed's TTL,
``Cache-Control: max-age`` or ``Retry-After`` allow. Failing feeds back off exponentially with
jitter so that many feeds failing together do not retry in lockstep.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

WEEK_SECONDS = 7 * 24 * 3600.0
_MAX_AGE = re.compile(r"(?:^|,)\s*(?:s-maxage|max-age)\s*=\s*\"?(\d+)", re.IGNORECASE)


@dataclass(frozen=True)
class IntervalBounds:
    min_seconds: float
    max_seconds: float

    def clamp(self, seconds: float) -> float:
        return min(self.max_seconds, max(self.min_seconds, seconds))


def publishing_interval(
    published: Iterable[datetime | None], *, now: datetime, bounds: IntervalBounds
) -> float:
    """A week divided by the entries published in the last week; quiet feeds get the maximum."""
    week_ago = now - timedelta(days=7)
    recent = sum(1 for moment in published if moment is not None and week_ago <= moment <= now)
    if recent == 0:
        return bounds.max_seconds
    return bounds.clamp(WEEK_SECONDS / recent)


def failure_backoff(failures: int, *, bounds: IntervalBounds, rng: random.Random) -> float:
    """Exponential backoff from the minimum interval with "equal jitter", capped at the maximum."""
    ceiling = min(bounds.max_seconds, bounds.min_seconds * 2.0 ** min(max(failures, 0), 30))
    return bounds.clamp(ceiling / 2.0 + rng.uniform(0.0, ceiling / 2.0))


def cache_max_age(cache_control: str | None) -> float | None:
    """``max-age`` (or ``s-maxage``) from a Cache-Control header, in seconds."""
    if not cache_control:
        return None
    if "no-store" in cache_control.lower():
        return None
    match = _MAX_AGE.search(cache_control)
    return float(match.group(1)) if match else None


def next_delay(
    interval: float,
    *,
    bounds: IntervalBounds,
    max_age: float | None = None,
    ttl: float | None = None,
    retry_after: float | None = None,
) -> float:
    """Seconds until the next poll: the interval, pushed back by what the server asked for.

    TTL and max-age are capped at the maximum interval (a feed may not silence itself for a
    year); an explicit Retry-After is obeyed in full.
    """
    delay = bounds.clamp(max(interval, max_age or 0.0, ttl or 0.0))
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay
