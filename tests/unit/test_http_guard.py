import asyncio
import time

import aiohttp
import pytest
from pydantic import ValidationError

from services.common.http import (
    AddressPolicy,
    FetchSettings,
    HostPoliteness,
    UnsupportedURLError,
    fetch,
    retry_after_seconds,
)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fd00:ec2::254",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "224.0.0.1",
        "240.0.0.1",
        "fec0::1",  # deprecated IPv6 site-local
        "2002:a9fe:a9fe::1",  # 6to4 wrapping 169.254.169.254
        "2002:7f00:1::",  # 6to4 wrapping 127.0.0.1
    ],
)
def test_internal_addresses_are_refused_without_an_allow_list(address: str) -> None:
    assert AddressPolicy().refusal(address) is not None


@pytest.mark.parametrize(
    "address", ["93.184.215.14", "2606:4700:4700::1111", "8.8.8.8", "2002:808:808::1"]
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert AddressPolicy().refusal(address) is None


def test_allow_list_opens_only_the_listed_networks() -> None:
    policy = AddressPolicy.from_text("127.0.0.1/32, ::1/128")
    assert policy.refusal("127.0.0.1") is None
    assert policy.refusal("::1") is None
    assert policy.refusal("127.0.0.2") == "loopback"
    assert policy.refusal("169.254.169.254") is not None


def test_a_malformed_allow_list_is_a_clear_error() -> None:
    with pytest.raises(Exception, match="bad network"):
        AddressPolicy.from_text("127.0.0.1/99")


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert retry_after_seconds("120") == 120
    now = 1_700_000_000.0
    assert retry_after_seconds("Tue, 14 Nov 2023 22:14:20 GMT", now=now) == 60
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


async def test_politeness_spaces_requests_to_one_host_but_not_across_hosts() -> None:
    politeness = HostPoliteness(global_concurrency=10, per_host_concurrency=5, min_interval=0.2)
    starts: dict[str, list[float]] = {"a": [], "b": []}

    async def visit(host: str) -> None:
        async with politeness.slot(host):
            starts[host].append(time.monotonic())

    await asyncio.gather(*(visit(h) for h in ("a", "a", "a", "b")))
    gaps = [later - earlier for earlier, later in zip(starts["a"], starts["a"][1:], strict=False)]
    assert all(gap >= 0.19 for gap in gaps), gaps
    assert starts["b"][0] - starts["a"][0] < 0.15


async def test_deferred_host_waits_for_retry_after() -> None:
    politeness = HostPoliteness(global_concurrency=10, per_host_concurrency=1, min_interval=0)
    politeness.defer("slow.example", 0.3)
    begun = time.monotonic()
    async with politeness.slot("slow.example"):
        waited = time.monotonic() - begun
    assert waited >= 0.29


def test_retry_after_ignores_non_ascii_digits_and_caps_huge_values() -> None:
    assert retry_after_seconds("²") is None
    assert retry_after_seconds("9" * 400) == 7 * 24 * 3600


@pytest.mark.parametrize(
    "setting",
    [
        {"max_bytes": 0},
        {"max_redirects": -1},
        {"total_timeout_seconds": 0},
        {"per_host_concurrency": 0},
        {"allowed_networks": "10.0.0.0/33"},
    ],
)
def test_unusable_fetch_settings_are_refused_when_read(setting: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match=next(iter(setting))):
        FetchSettings(**setting)  # type: ignore[arg-type]


async def test_an_unusable_address_is_not_retried_as_a_connection_error() -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(UnsupportedURLError, match="invalid URL"):
            await fetch(session, "http://127.1/", settings=FetchSettings())
