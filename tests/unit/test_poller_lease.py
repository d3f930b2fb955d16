"""The lease rule: read in log order, the first claim after the holder's lease ends wins."""

from __future__ import annotations

import pytest

from services.poller.lease import Holder, LeaseRecord, next_holder


def replay(*records: LeaseRecord) -> Holder | None:
    holder = None
    for record in records:
        holder = next_holder(holder, record)
    return holder


def test_a_claim_while_another_poller_holds_the_lease_loses() -> None:
    first = LeaseRecord("a", written_at=100.0, expires_at=160.0)
    second = LeaseRecord("b", written_at=101.0, expires_at=161.0)
    assert replay(first, second) == Holder("a", 160.0)


def test_the_holder_renews_and_a_claim_after_its_lease_lapsed_takes_over() -> None:
    renewals = [LeaseRecord("a", 100.0 + n, 160.0 + n) for n in range(3)]
    assert replay(*renewals) == Holder("a", 162.0)
    assert replay(*renewals, LeaseRecord("b", 161.0, 221.0)) == Holder("a", 162.0)
    assert replay(*renewals, LeaseRecord("b", 162.0, 222.0)) == Holder("b", 222.0)


def test_a_release_hands_over_at_once_and_only_the_holder_can_release() -> None:
    held = LeaseRecord("a", 100.0, 160.0)
    assert replay(held, LeaseRecord("b", 101.0, 101.0)) == Holder("a", 160.0)
    assert replay(held, LeaseRecord("a", 110.0, 110.0)) is None
    taken = replay(held, LeaseRecord("a", 110.0, 110.0), LeaseRecord("b", 110.5, 170.5))
    assert taken == Holder("b", 170.5)


def test_a_record_round_trips_and_a_malformed_one_is_refused() -> None:
    record = LeaseRecord("host:1:abc", 1.5, 61.5)
    assert LeaseRecord.from_json(record.to_json()) == record
    with pytest.raises(ValueError):
        LeaseRecord.from_json(b'{"version": 1, "owner": "x", "written_at": "now"}')
