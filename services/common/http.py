"""Safe, polite HTTP for every fetcher (the poller's feeds, the extractor's pages).

- **Address guard**: every connection's addresses are checked *after* DNS resolution, so
  neither a hostile link, a redirect nor a DNS name pointing inside can reach private,
  loopback, link-local (cloud metadata), shared, reserved or multicast addresses, IPv4 and IPv6,
  unless a network is explicitly allowed (``WIREWATCH_FETCH_ALLOWED_NETWORKS``).
- **Limits**: connect/read/total timeouts; a body cap enforced while streaming, on the
  decompressed bytes; a redirect limit with every hop checked.
- **Politeness**: a global concurrency limit, a per-host concurrency limit and a minimum
  spacing between requests to one host.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import ResolveResult
from multidict import CIMultiDictProxy
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.errors import WirewatchError

logger = logging.getLogger(__name__)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
PERMANENT_REDIRECTS = frozenset({301, 308})
MAX_RETRY_AFTER_SECONDS = 7 * 24 * 3600.0
DEFAULT_USER_AGENT = "wirewatch/0.1 (news-event monitor; +https://github.com/wirewatch/wirewatch)"


class FetchSettings(BaseSettings):
    """Rules shared by every fetcher; one instance per process, read at start-up."""

    model_config = SettingsConfigDict(env_prefix="WIREWATCH_FETCH_", frozen=True, extra="ignore")

    allowed_networks: str = Field(
        default="",
        description="Comma-separated CIDRs reachable although not public (e.g. 127.0.0.1/32)",
    )
    user_agent: str = DEFAULT_USER_AGENT
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    read_timeout_seconds: float = Field(default=15.0, gt=0)
    # One fetch, all its redirect hops together, on the network (a politeness wait excluded).
    total_timeout_seconds: float = Field(default=30.0, gt=0)
    max_bytes: int = Field(default=5 * 1024 * 1024, gt=0)
    max_redirects: int = Field(default=5, ge=0)
    global_concurrency: int = Field(default=64, ge=1)
    per_host_concurrency: int = Field(default=2, ge=1)
    min_host_interval_seconds: float = Field(default=1.0, ge=0)

    @field_validator("allowed_networks")
    @classmethod
    def _networks_parse(cls, value: str) -> str:
        """A bad CIDR is a configuration error at start-up, not a traceback at the first fetch."""
        try:
            AddressPolicy.from_text(value)
        except WirewatchError as exc:
            raise ValueError(str(exc)) from exc
        return value

    def policy(self) -> AddressPolicy:
        return AddressPolicy.from_text(self.allowed_networks)


class FetchError(WirewatchError):
    """A fetch that failed for a reason a caller reports (``reason`` is machine-readable)."""

    reason: str = "fetch_error"

    def __init__(self, message: str, *, url: str, **details: Any) -> None:
        super().__init__(message)
        self.url = url
        self.details = details


class BlockedAddressError(FetchError, OSError):
    """The target resolves only to addresses the policy refuses.

    Also an ``OSError`` so that aiohttp, which wraps resolver errors, keeps it as the cause.
    """

    reason = "blocked_address"


class TooLargeError(FetchError):
    reason = "too_large"


class TooManyRedirectsError(FetchError):
    reason = "too_many_redirects"


class UnsupportedURLError(FetchError):
    reason = "unsupported_url"


class FetchTimeoutError(FetchError):
    reason = "timeout"


class ConnectionFailedError(FetchError):
    reason = "connection_error"


class HostDeferredError(FetchError):
    """The host asked (Retry-After) not to be contacted for longer than the caller will wait."""

    reason = "host_deferred"


@dataclass(frozen=True)
class AddressPolicy:
    """Public addresses are allowed; everything else only inside ``allowed`` networks."""

    allowed: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_text(cls, text: str) -> AddressPolicy:
        networks = []
        for part in text.split(","):
            if part.strip():
                try:
                    networks.append(ipaddress.ip_network(part.strip(), strict=False))
                except ValueError as exc:
                    raise WirewatchError(f"bad network in allowed_networks: {part!r}") from exc
        return cls(tuple(networks))

    def refusal(self, address: str) -> str | None:
        """Why ``address`` may not be contacted, or None when it may."""
        ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in network for network in self.allowed):
            return None
        if isinstance(ip, ipaddress.IPv6Address):
            if ip.is_site_local:
                return "site-local"
            # 6to4 and Teredo addresses carry an IPv4 address a relay would deliver to.
            embedded = ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
            if embedded is not None and (why := self.refusal(str(embedded))) is not None:
                return f"{why} (embedded in {ip})"
        if ip.is_loopback:
            return "loopback"
        if ip.is_link_local:
            return "link-local (cloud metadata lives here)"
        if ip.is_private:
            return "private"
        if ip.is_multicast:
            return "multicast"
        if ip.is_unspecified or ip.is_reserved:
            return "reserved"
        if not ip.is_global:
            return "not globally routable"
        return None


class GuardedConnector(aiohttp.TCPConnector):
    """Checks the resolved addresses of every connection (names, IP literals, cached entries)."""

    def __init__(self, policy: AddressPolicy, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.policy = policy

    async def _resolve_host(
        self, host: str, port: int, traces: Sequence[Any] | None = None
    ) -> list[ResolveResult]:
        results = await super()._resolve_host(host, port, traces)
        allowed = [r for r in results if self.policy.refusal(r["host"]) is None]
        if not allowed:
            reasons = sorted({f"{r['host']} is {self.policy.refusal(r['host'])}" for r in results})
            raise BlockedAddressError(
                f"refusing {host}: {'; '.join(reasons)}", url=host, addresses=reasons
            )
        return allowed


class HostPoliteness:
    """Global and per-host concurrency limits plus a minimum spacing between starts per host."""

    def __init__(
        self, *, global_concurrency: int, per_host_concurrency: int, min_interval: float
    ) -> None:
        self._global = asyncio.Semaphore(global_concurrency)
        self._per_host_concurrency = per_host_concurrency
        self._min_interval = min_interval
        self._hosts: dict[str, asyncio.Semaphore] = {}
        self._next_start: dict[str, float] = {}
        self._spacing_locks: dict[str, asyncio.Lock] = {}

    @classmethod
    def from_settings(cls, settings: FetchSettings) -> HostPoliteness:
        return cls(
            global_concurrency=settings.global_concurrency,
            per_host_concurrency=settings.per_host_concurrency,
            min_interval=settings.min_host_interval_seconds,
        )

    def defer(self, host: str, seconds: float) -> None:
        """Push this host's next allowed start back (after a 429/503 with Retry-After)."""
        self._next_start[host] = max(self._next_start.get(host, 0.0), time.monotonic() + seconds)

    @asynccontextmanager
    async def slot(self, host: str, *, max_wait: float | None = None) -> AsyncIterator[None]:
        """Wait for this host's turn; ``max_wait`` bounds a wait for a deferred host (beyond it
        :class:`HostDeferredError` is raised rather than sleeping, say, the week asked for)."""
        host_semaphore = self._hosts.setdefault(host, asyncio.Semaphore(self._per_host_concurrency))
        spacing = self._spacing_locks.setdefault(host, asyncio.Lock())
        async with host_semaphore:
            async with spacing:
                wait = self._next_start.get(host, 0.0) - time.monotonic()
                if max_wait is not None and wait > max_wait:
                    raise HostDeferredError(
                        f"{host} asked not to be contacted for another {wait:.0f}s "
                        f"(Retry-After), more than the {max_wait:.0f}s this fetch waits",
                        url=host,
                    )
                if wait > 0:
                    await asyncio.sleep(wait)
                self._next_start[host] = time.monotonic() + self._min_interval
            async with self._global:
                yield


@dataclass
class FetchResult:
    url: str
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    redirects: list[tuple[int, str]] = field(default_factory=list)
    elapsed_seconds: float = 0.0

    @property
    def permanent_redirect_target(self) -> str | None:
        """Where the resource now lives when every hop was a permanent redirect."""
        if self.redirects and all(status in PERMANENT_REDIRECTS for status, _ in self.redirects):
            return self.url
        return None


def check_url(url: str) -> str:
    """Only absolute http(s) URLs with a host are fetched; returns the host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsupportedURLError(f"not an http(s) URL: {url!r}", url=url)
    return parts.hostname


def make_session(settings: FetchSettings, *, policy: AddressPolicy | None = None) -> Any:
    """An aiohttp session whose every connection passes the address guard."""
    connector = GuardedConnector(
        policy or settings.policy(),
        limit=settings.global_concurrency,
        limit_per_host=settings.per_host_concurrency,
        ttl_dns_cache=60,
    )
    timeout = aiohttp.ClientTimeout(
        total=settings.total_timeout_seconds,
        sock_connect=settings.connect_timeout_seconds,
        sock_read=settings.read_timeout_seconds,
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        headers={"User-Agent": settings.user_agent, "Accept-Encoding": "gzip, deflate"},
        auto_decompress=True,
    )


async def read_capped(response: aiohttp.ClientResponse, max_bytes: int, url: str) -> bytes:
    """Read the (decompressed) body, refusing as soon as it exceeds ``max_bytes``."""
    declared = response.content_length
    if declared is not None and declared > max_bytes:
        raise TooLargeError(
            f"declared {declared} bytes, cap {max_bytes}", url=url, declared=declared
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > max_bytes:
            raise TooLargeError(f"body exceeds {max_bytes} bytes", url=url, read=size)
        chunks.append(chunk)
    return b"".join(chunks)


async def fetch(
    session: Any,
    url: str,
    *,
    settings: FetchSettings,
    politeness: HostPoliteness | None = None,
    headers: Mapping[str, str] | None = None,
    method: Literal["GET", "HEAD"] = "GET",
    max_host_wait: float | None = None,
) -> FetchResult:
    """GET ``url`` following redirects by hand so every hop is checked and counted.

    Non-2xx statuses are returned, not raised: callers decide what 304, 404 or 429 mean.
    Failures to fetch at all raise a :class:`FetchError` subclass with a ``reason``.
    ``max_host_wait`` bounds the wait for a host deferred by an earlier Retry-After.
    """
    started = time.monotonic()
    redirects: list[tuple[int, str]] = []
    current = url
    # A redirect chain of slow hops must not take hops x the time limit; time spent waiting
    # for a host's turn is not the fetch's fault, and is not counted.
    network = Stopwatch(limit=settings.total_timeout_seconds)
    while True:
        host = check_url(current)
        try:
            result = await _fetch_once(
                session,
                current,
                host,
                settings,
                politeness,
                headers,
                method,
                max_host_wait,
                network,
            )
        except (BlockedAddressError, HostDeferredError):
            raise
        except aiohttp.ClientConnectorError as exc:
            blocked = _blocked_cause(exc)
            if blocked is not None:
                raise BlockedAddressError(str(blocked), url=current) from exc
            raise ConnectionFailedError(f"cannot connect: {exc}", url=current) from exc
        except TimeoutError as exc:
            raise FetchTimeoutError(
                f"timed out after {network.spent:.1f}s on the network"
                f" ({time.monotonic() - started:.1f}s in all, {len(redirects)} redirects)",
                url=current,
            ) from exc
        except aiohttp.InvalidURL as exc:
            # Not worth a retry: the address itself is unusable (e.g. "http://127.1/").
            raise UnsupportedURLError(f"invalid URL: {exc}", url=current) from exc
        except (aiohttp.ClientError, OSError) as exc:
            blocked = _blocked_cause(exc)
            if blocked is not None:
                raise BlockedAddressError(str(blocked), url=current) from exc
            raise ConnectionFailedError(f"{type(exc).__name__}: {exc}", url=current) from exc
        status, response_headers, body = result
        location = response_headers.get("Location")
        if status in REDIRECT_STATUSES and location:
            if len(redirects) >= settings.max_redirects:
                raise TooManyRedirectsError(
                    f"more than {settings.max_redirects} redirects", url=url, hops=len(redirects)
                )
            current = urljoin(current, location)
            redirects.append((status, current))
            continue
        return FetchResult(
            url=current,
            status=status,
            headers=response_headers,
            body=body,
            redirects=redirects,
            elapsed_seconds=time.monotonic() - started,
        )


@dataclass
class Stopwatch:
    """Time on the network so far, against a limit for all of it."""

    limit: float
    spent: float = 0.0

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Count the block's time; raise ``TimeoutError`` when the limit runs out inside it."""
        remaining = self.limit - self.spent
        if remaining <= 0:
            raise TimeoutError
        started = time.monotonic()
        try:
            async with asyncio.timeout(remaining):
                yield
        finally:
            self.spent += time.monotonic() - started


async def _fetch_once(
    session: Any,
    url: str,
    host: str,
    settings: FetchSettings,
    politeness: HostPoliteness | None,
    headers: Mapping[str, str] | None,
    method: str,
    max_host_wait: float | None,
    network: Stopwatch,
) -> tuple[int, CIMultiDictProxy[str], bytes]:
    async def request() -> tuple[int, CIMultiDictProxy[str], bytes]:
        async with (
            network.running(),
            session.request(
                method, url, headers=dict(headers or {}), allow_redirects=False
            ) as response,
        ):
            if response.status in REDIRECT_STATUSES or method == "HEAD":
                return response.status, response.headers, b""
            body = await read_capped(response, settings.max_bytes, url)
            return response.status, response.headers, body

    if politeness is None:
        return await request()
    async with politeness.slot(host, max_wait=max_host_wait):
        return await request()


def _blocked_cause(exc: BaseException) -> BlockedAddressError | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, BlockedAddressError):
            return current
        nested = getattr(current, "os_error", None)
        if isinstance(nested, BlockedAddressError):
            return nested
        current = current.__cause__ or current.__context__
    return None


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), or None.

    Capped at a week: a hostile or broken server must not defer a feed forever.
    """
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(min(int(value), int(MAX_RETRY_AFTER_SECONDS)))
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    seconds = when.timestamp() - (time.time() if now is None else now)
    return min(max(0.0, seconds), MAX_RETRY_AFTER_SECONDS)
