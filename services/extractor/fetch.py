"""Fetching article pages on top of the shared safe client, with the extractor's own rules.

The shared client (``services.common.http``) refuses private addresses after DNS resolution,
caps the decompressed body while streaming, checks every redirect hop and times out. This
module adds what matters for pages: only HTML-like responses, HTTP errors as reasons, and
bounded retries with backoff for failures that may pass (timeouts, 5xx, 429).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from services.common.http import (
    FetchError,
    FetchSettings,
    HostPoliteness,
    fetch,
    retry_after_seconds,
)
from services.common.kafka import Failure

logger = logging.getLogger(__name__)

HTML_CONTENT_TYPES = frozenset({"text/html", "application/xhtml+xml"})
TRANSIENT_REASONS = frozenset({"timeout", "connection_error"})
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
_HTML_START = (b"<!doctype html", b"<html", b"<head", b"<body", b"<!--")


@dataclass(frozen=True)
class FetchedPage:
    """An HTML page as the server sent it, after the last redirect."""

    url: str
    status: int
    content_type: str | None
    body: bytes
    seconds: float
    redirects: int
    attempts: int = 1


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a transient failure is retried."""

    max_attempts: int = 3
    base_seconds: float = 1.0
    max_seconds: float = 30.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Exponential backoff after ``attempt`` (1-based), never sooner than Retry-After."""
        backoff = min(self.max_seconds, self.base_seconds * 2 ** (attempt - 1))
        if retry_after is not None:
            return float(min(self.max_seconds, max(backoff, retry_after)))
        return float(backoff)


def media_type(content_type: str | None) -> str | None:
    if not content_type:
        return None
    return content_type.split(";", 1)[0].strip().lower() or None


def looks_like_html(body: bytes) -> bool:
    """Sniff a body sent without a Content-Type (as browsers do for a missing header)."""
    start = body[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return start.startswith(_HTML_START)


def is_html(content_type: str | None, body: bytes) -> bool:
    """HTML-like responses only: text/html and XHTML, or no type at all and an HTML body."""
    kind = media_type(content_type)
    if kind is None:
        return looks_like_html(body)
    return kind in HTML_CONTENT_TYPES


def classify_response(
    url: str, status: int, content_type: str | None, body: bytes
) -> Failure | None:
    """Why a fetched response cannot become an article, or None when it can."""
    if not 200 <= status < 300:
        return Failure("http_status", f"HTTP {status}", {"url": url, "status": status})
    if not is_html(content_type, body):
        return Failure(
            "not_html",
            f"content type {media_type(content_type) or '(none)'} is not HTML",
            {"url": url, "content_type": content_type},
        )
    return None


@dataclass(frozen=True)
class AttemptResult:
    """One attempt: a page, or a failure with whether to try again (and how soon)."""

    page: FetchedPage | None
    failure: Failure | None
    transient: bool = False
    retry_after: float | None = None


Observer = Callable[[str, float, int], None]


async def fetch_page_once(
    session: Any,
    url: str,
    *,
    settings: FetchSettings,
    politeness: HostPoliteness | None,
    observe: Observer | None = None,
    max_host_wait: float | None = None,
) -> AttemptResult:
    """Fetch ``url`` once; ``observe(outcome, seconds, bytes)`` sees every attempt.

    A host deferred (Retry-After) for longer than ``max_host_wait`` fails the attempt at once
    (``host_deferred``, not retried): sleeping in its slot would hold up every later entry of
    the partition, since articles are emitted in offset order.
    """
    started = time.monotonic()
    try:
        result = await fetch(
            session, url, settings=settings, politeness=politeness, max_host_wait=max_host_wait
        )
    except FetchError as exc:
        seconds = time.monotonic() - started
        if observe:
            observe(exc.reason, seconds, 0)
        details: dict[str, Any] = {"url": url, **_jsonable(exc.details)}
        if exc.url != url:
            details["failed_url"] = exc.url
        return AttemptResult(
            None, Failure(exc.reason, str(exc), details), exc.reason in TRANSIENT_REASONS
        )
    seconds = time.monotonic() - started
    content_type = result.headers.get("Content-Type")
    failure = classify_response(result.url, result.status, content_type, result.body)
    if observe:
        observe(failure.reason if failure else "ok", seconds, len(result.body))
    if failure is not None:
        retry_after = None
        if result.status in (429, 503):
            retry_after = retry_after_seconds(result.headers.get("Retry-After"))
            if retry_after is not None and politeness is not None:
                politeness.defer(urlsplit(result.url).hostname or "", retry_after)
        return AttemptResult(
            None, failure, result.status in TRANSIENT_STATUSES, retry_after=retry_after
        )
    page = FetchedPage(
        url=result.url,
        status=result.status,
        content_type=content_type,
        body=result.body,
        seconds=seconds,
        redirects=len(result.redirects),
    )
    return AttemptResult(page, None)


async def fetch_page(
    session: Any,
    url: str,
    *,
    settings: FetchSettings,
    politeness: HostPoliteness | None = None,
    retry: RetryPolicy = RetryPolicy(),  # noqa: B008 - frozen, shared safely
    observe: Observer | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> FetchedPage | Failure:
    """Fetch a page, retrying transient failures with backoff; a failure is a ``Failure``.

    Each entry retries in its own task, so a slow or failing host delays only its entries.
    """
    attempt = 0
    while True:
        attempt += 1
        outcome = await fetch_page_once(
            session,
            url,
            settings=settings,
            politeness=politeness,
            observe=observe,
            max_host_wait=retry.max_seconds,
        )
        if outcome.page is not None:
            return replace(outcome.page, attempts=attempt)
        failure = outcome.failure or Failure("fetch_error", "no page and no reason")
        # A Retry-After longer than an entry may wait is answered now, not after a retry that
        # would only find the host still deferred.
        waits_too_long = (outcome.retry_after or 0.0) > retry.max_seconds
        if not outcome.transient or attempt >= retry.max_attempts or waits_too_long:
            details = dict(failure.details or {})
            if outcome.retry_after is not None:
                details["retry_after_seconds"] = outcome.retry_after
            return Failure(failure.reason, failure.error, details, attempts=attempt)
        delay = retry.delay(attempt, outcome.retry_after)
        logger.info(
            "retrying %s in %.1fs after %s (attempt %d of %d)",
            url,
            delay,
            failure.reason,
            attempt,
            retry.max_attempts,
        )
        await sleep(delay)


def _jsonable(details: dict[str, Any]) -> dict[str, Any]:
    """Error details as JSON values (the DLQ message carries them)."""
    safe: dict[str, Any] = {}
    for key, value in details.items():
        if isinstance(value, str | int | float | bool) or value is None:
            safe[key] = value
        elif isinstance(value, list | tuple):
            safe[key] = [str(item) for item in value]
        else:
            safe[key] = str(value)
    return safe
