"""The replay's pure core: ranges, time look-up, provenance, checkpoints, progress lines."""

from __future__ import annotations

import io
from bisect import bisect_left
from collections.abc import Awaitable, Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.ranges import (
    CopyPlan,
    PartitionRange,
    RecordPosition,
    ReplayError,
    first_offset_at_or_after,
    plan_ranges,
)
from wirewatch_tools.replay.plan import (
    JOB_HEADER,
    SOURCE_HEADER,
    Checkpoint,
    OffsetChange,
    advance_past_copied,
    copied_from,
    format_offset_changes,
    format_plan,
    job_id,
    latest_checkpoints,
    parse_instant,
    parse_offsets,
    provenance_headers,
    start_checkpoint,
)
from wirewatch_tools.replay.progress import Progress, describe_progress


def test_instant_without_zone_is_utc_and_z_suffix_is_accepted() -> None:
    assert parse_instant("2025-03-17T09:00:00") == parse_instant("2025-03-17T09:00:00Z")
    assert parse_instant("2025-03-17T10:00:00+01:00") == 1_742_202_000_000
    assert parse_instant("2025-03-17") == 1_742_169_600_000


def test_instant_that_is_not_iso_8601_is_a_clear_error() -> None:
    with pytest.raises(ReplayError, match="ISO 8601"):
        parse_instant("last tuesday")


def test_offsets_spec_names_each_partitions_offset() -> None:
    assert parse_offsets("0:120, 1:80") == {0: 120, 1: 80}


@pytest.mark.parametrize("spec", ["0=12", "0:x", "0:1,0:2", "-1:5", ""])
def test_malformed_offsets_spec_is_refused(spec: str) -> None:
    with pytest.raises(ReplayError):
        parse_offsets(spec)


def test_ranges_are_clamped_to_what_the_partitions_retain() -> None:
    ranges = plan_ranges(
        {0: 10, 1: 0, 2: 0},
        {0: 50, 1: 30, 2: 5},
        starts={0: 3, 1: 20, 2: 9},
        stops={1: 25},
    )
    assert ranges == (
        PartitionRange(0, 10, 50),
        PartitionRange(1, 20, 25),
        PartitionRange(2, 5, 5),
    )
    assert [r.count for r in ranges] == [40, 5, 0]


def test_range_on_a_partition_the_topic_lacks_is_refused() -> None:
    with pytest.raises(ReplayError, match="no such partition"):
        plan_ranges({0: 0}, {0: 9}, starts={3: 0})


def reader(
    stamps: list[int], *, start: int = 0, batch: int = 3
) -> tuple[Callable[[int], Awaitable[list[RecordPosition]]], list[int]]:
    """A fake partition whose record ``start + i`` is stamped ``stamps[i]``."""
    calls: list[int] = []

    async def read_from(offset: int) -> list[RecordPosition]:
        calls.append(offset)
        first = max(offset, start) - start
        return [
            RecordPosition(start + i, stamps[i])
            for i in range(first, min(first + batch, len(stamps)))
        ]

    return read_from, calls


async def test_correct_broker_hint_is_used_after_one_read() -> None:
    read_from, calls = reader([10, 20, 30, 40, 50])
    found = await first_offset_at_or_after(30, begin=0, end=5, read_from=read_from, hint=2)
    assert found == 2 and calls == [1]


async def test_wrong_broker_hint_is_replaced_by_a_search_over_record_timestamps() -> None:
    # Tansu indexes arrival time: a burst of old records all "arrived" at offset 0.
    read_from, _ = reader([10, 20, 30, 40, 50])
    assert await first_offset_at_or_after(35, begin=0, end=5, read_from=read_from, hint=0) == 3


async def test_time_after_every_record_gives_the_end_offset() -> None:
    read_from, _ = reader([10, 20, 30])
    assert await first_offset_at_or_after(99, begin=0, end=3, read_from=read_from) == 3
    assert await first_offset_at_or_after(99, begin=0, end=3, read_from=read_from, hint=3) == 3


async def test_time_before_every_record_gives_the_first_retained_offset() -> None:
    read_from, _ = reader([10, 20, 30], start=7)
    assert await first_offset_at_or_after(0, begin=7, end=10, read_from=read_from) == 7


@given(
    stamps=st.lists(st.integers(0, 50), min_size=0, max_size=40).map(sorted),
    moment=st.integers(-1, 52),
    batch=st.integers(1, 5),
    hint=st.one_of(st.none(), st.integers(0, 40)),
)
async def test_lookup_agrees_with_a_linear_scan_for_any_nondecreasing_stamps(
    stamps: list[int], moment: int, batch: int, hint: int | None
) -> None:
    read_from, _ = reader(stamps, batch=batch)
    found = await first_offset_at_or_after(
        moment, begin=0, end=len(stamps), read_from=read_from, hint=hint
    )
    assert found == bisect_left(stamps, moment)


def test_provenance_replaces_an_earlier_copys_and_keeps_the_records_headers() -> None:
    original = [("wirewatch-trace-id", b"t1"), (JOB_HEADER, b"old"), (SOURCE_HEADER, b"9:9")]
    headers = provenance_headers(original, job="j1", partition=2, offset=41)
    assert headers == [("wirewatch-trace-id", b"t1"), (JOB_HEADER, b"j1"), (SOURCE_HEADER, b"2:41")]
    assert copied_from(headers, "j1") == (2, 41)
    assert copied_from(headers, "another-job") is None
    assert copied_from([("wirewatch-trace-id", b"t1")], "j1") is None


def test_same_request_gets_the_same_job_and_another_request_another() -> None:
    assert job_id("a", "b", "since=1") == job_id("a", "b", "since=1")
    assert job_id("a", "b", "since=1") != job_id("a", "b", "since=2")
    assert job_id("a", "b", "x") != job_id("a", "c", "x")


def sample_plan() -> CopyPlan:
    return CopyPlan(
        "src",
        "dst",
        (PartitionRange(0, 5, 15), PartitionRange(1, 0, 4)),
        since_ms=1000,
        until_ms=2000,
    )


def test_checkpoint_round_trips_through_json() -> None:
    checkpoint = Checkpoint(
        job="j",
        plan=sample_plan(),
        next_offsets={0: 9, 1: 4},
        target_offsets={0: 100, 1: 7},
        copied=8,
        skipped=1,
    )
    assert Checkpoint.from_json(checkpoint.to_json()) == checkpoint
    assert checkpoint.remaining() == 6


def test_unreadable_checkpoint_is_a_replay_error() -> None:
    with pytest.raises(ReplayError, match="checkpoint"):
        Checkpoint.from_json(b'{"job": "j"}')


def test_resume_moves_past_records_found_copied_beyond_the_checkpoint() -> None:
    checkpoint = start_checkpoint("j", sample_plan(), {0: 0, 1: 0})
    checkpoint = Checkpoint.from_json(checkpoint.to_json())
    resumed = advance_past_copied(checkpoint, [(0, 5), (0, 6), (1, 0), (0, 7), (7, 3)])
    assert resumed.next_offsets == {0: 8, 1: 1}
    assert resumed.copied == 4
    # Records the checkpoint already counts neither move a position back nor count twice.
    again = advance_past_copied(resumed, [(0, 2), (0, 6), (1, 0), (0, 8)])
    assert again.next_offsets == {0: 9, 1: 1}
    assert again.copied == 5


def test_latest_checkpoint_per_job_wins_and_a_tombstone_forgets_the_job() -> None:
    values = [(b"a", b"1"), (b"b", b"1"), (b"a", b"2"), (b"b", None), (None, b"x")]
    assert latest_checkpoints(values) == {"a": b"2"}


def test_time_filter_is_half_open() -> None:
    plan = sample_plan()
    assert [plan.in_time_range(t) for t in (999, 1000, 1999, 2000)] == [False, True, True, False]


def test_dry_run_table_lists_each_partition_and_the_total() -> None:
    lines = format_plan(sample_plan(), "j")
    assert lines[0] == "copy src -> dst (job j)"
    assert lines[1] == "time range [1970-01-01T00:00:01.000Z, 1970-01-01T00:00:02.000Z)"
    assert lines[-3].split() == ["0", "5", "15", "10"]
    assert lines[-2].split() == ["1", "0", "4", "4"]
    assert lines[-1].split() == ["total", "14"]


def test_rewind_table_marks_partitions_that_did_not_move() -> None:
    changes = [OffsetChange("t", 0, 30, 12, 12), OffsetChange("t", 1, None, 5, 4)]
    lines = format_offset_changes("g", changes)
    assert lines[2].split() == ["t", "0", "30", "12", "-18"]
    assert "NOT REWOUND (wanted 4)" in lines[3]


def test_progress_line_gives_rate_and_eta() -> None:
    assert describe_progress(250, 1000, 0.5) == "250/1000 (25%) 500 msg/s, eta 1.5s"
    assert describe_progress(0, 10, 0.0).endswith("eta unknown")


def test_progress_off_a_terminal_writes_plain_lines_not_a_bar() -> None:
    stream = io.StringIO()
    progress = Progress(100, label="copy", stream=stream, every_seconds=0.0)
    progress.advance(40)
    progress.close()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("copy: 40/100 (40%)") and "\r" not in stream.getvalue()
    assert lines[-1].startswith("copy: 40/100")


def test_progress_on_a_terminal_draws_a_bar_with_rate() -> None:
    stream = io.StringIO()
    progress = Progress(100, label="copy", stream=stream, interactive=True)
    progress.advance(100)
    progress.close()
    assert "100/100" in stream.getvalue() and "msg/s" in stream.getvalue()
