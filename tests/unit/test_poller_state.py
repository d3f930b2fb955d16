"""Seen-entry state: bounded, never forgets what is still in the feed, round-trips as JSON."""

from __future__ import annotations

import pytest

from services.poller.state import FeedState


def test_seen_entries_are_bounded_but_current_ones_are_always_kept() -> None:
    state = FeedState(feed_key="https://f/rss", url="https://f/rss")
    state.remember([f"old-{n}" for n in range(10)], bound=10)
    state.remember([f"new-{n}" for n in range(8)], bound=10)
    assert len(state.seen) == 10
    assert all(state.has_seen(f"new-{n}") for n in range(8))
    assert state.has_seen("old-0") and state.has_seen("old-1") and not state.has_seen("old-2")
    state.remember([f"big-{n}" for n in range(25)], bound=10)
    assert len(state.seen) == 25 and all(state.has_seen(f"big-{n}") for n in range(25))


def test_state_round_trips_through_json() -> None:
    state = FeedState(
        feed_key="https://f/rss",
        url="https://g/rss",
        etag='"v2"',
        last_modified="Mon, 01 Jan 2024",
        consecutive_failures=2,
        next_poll_at=123.5,
    )
    state.remember(["a", "b"], bound=5)
    restored = FeedState.from_json(state.to_json())
    assert restored == state
    assert restored.has_seen("a") and not restored.has_seen("c")


def test_unknown_state_version_is_refused() -> None:
    with pytest.raises(ValueError, match="version"):
        FeedState.from_json(b'{"version": 99, "feed_key": "x", "url": "x"}')


def test_durable_view_ignores_the_clock_fields_only() -> None:
    state = FeedState(feed_key="https://f/rss", url="https://f/rss", etag='"1"')
    before = state.durable_view()
    state.next_poll_at, state.last_success, state.last_outcome = 99.0, 98.0, "304"
    assert state.durable_view() == before
    state.etag = '"2"'
    assert state.durable_view() != before


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"\xff{", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"version": 1, "feed_key": "", "url": "https://f/rss"}', "feed_key"),
        (b'{"version": 1, "feed_key": "k", "url": "u", "seen": "abc"}', "seen"),
        (b'{"version": 1, "feed_key": "k", "url": "u", "consecutive_failures": "2"}', "count"),
        (b'{"version": 1, "feed_key": "k", "url": "u", "next_poll_at": "soon"}', "next_poll_at"),
        (b'{"version": 1, "feed_key": "k", "url": "u", "etag": 7}', "etag"),
        (b'{"version": 1, "feed_key": "k", "url": "u", "gone": "no"}', "gone"),
    ],
)
def test_a_state_of_the_wrong_shape_is_refused_with_the_reason(raw: bytes, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        FeedState.from_json(raw)
