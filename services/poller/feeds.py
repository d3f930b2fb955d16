"""Pure feed handling: parse bytes with feedparser, canonicalise links, give entries an identity.

Nothing here touches the network or Kafka, so the offline ``wirewatch parse-feed`` command and
the service share it and tests run it without servers.
"""

from __future__ import annotations

import calendar
import hashlib
import io
import json
import logging
import re
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urldefrag, urljoin, urlsplit, urlunsplit

import feedparser
from courlan import normalize_url
from feedparser import api as feedparser_api

from services.common.messages import FeedEntry
from services.common.redact import redact_url
from services.common.times import iso_utc

logger = logging.getLogger(__name__)

GZIP_MAGIC = b"\x1f\x8b"
MAX_GUNZIPPED_BYTES = 20 * 1024 * 1024
# Entities a feed declares in its DOCTYPE are expanded by the XML parser (up to a hundredfold in
# expat), so a few declarations referenced throughout a 5 MB body could make gigabytes of text.
MAX_ENTITY_EXPANSION_BYTES = 2 * 1024 * 1024
_INTERNAL_SUBSET = re.compile(rb"<!DOCTYPE[^\[>]*\[(.*?)\]\s*>", re.DOTALL | re.IGNORECASE)
_ENTITY_DECLARATION = re.compile(rb"""<!ENTITY\s+([^\s%"']+)\s+(["'])(.*?)\2\s*>""", re.DOTALL)
_PROLOG_BYTES = 64 * 1024


@dataclass(frozen=True)
class ParsedEntry:
    """One entry as the feed gave it, with the identity and canonical URL wirewatch uses."""

    entry_id: str
    url: str | None
    link: str | None
    guid: str | None
    title: str
    summary: str | None
    author: str | None
    published: datetime | None
    updated: datetime | None


@dataclass(frozen=True)
class ParsedFeed:
    """What feedparser recovered from one body, plus its complaint when the body was malformed."""

    title: str | None
    version: str
    entries: tuple[ParsedEntry, ...]
    bozo_exception: str | None
    bozo_message: str | None
    ttl_seconds: float | None
    gunzipped: bool = False

    @property
    def looks_broken(self) -> bool:
        """No feed format recognised and nothing recovered: the poll counts as a failure.

        Well-formed XML that is no feed (a catalogue, a sitemap) is broken too although
        feedparser raises no complaint about it.
        """
        return not self.entries and not self.version

    @property
    def problem(self) -> str | None:
        """Why the body is not a clean feed: feedparser's exception class, or ``not_a_feed``."""
        if self.bozo_exception is not None:
            return self.bozo_exception
        return "not_a_feed" if self.looks_broken else None


def canonicalize_url(link: str | None, *, base: str | None = None) -> str | None:
    """The article URL without tracking parameters (``utm_*``, ``fbclid``…) or fragment.

    courlan does the normalisation (host case, default ports, tracker removal); only
    absolute http(s) URLs are accepted.
    """
    if not link or not link.strip():
        return None
    try:
        # urljoin and urldefrag raise on a malformed host such as "[" (an unclosed IPv6 literal)
        absolute = urljoin(base, link.strip()) if base else link.strip()
        # A SplitResult, not the string: given a string, courlan HTML-unescapes it, so a link's
        # "&copy=2" (already unescaped by feedparser) would become "©=2".
        normalized = normalize_url(urlsplit(absolute))
        without_fragment = urldefrag(normalized).url
    except (ValueError, AttributeError):
        return None
    try:
        parts = urlsplit(without_fragment)
        host = parts.hostname
    except ValueError:
        return None
    # courlan turns a link with no host ("http:x") into "http:///x"
    if parts.scheme not in ("http", "https") or not host:
        return None
    return str(without_fragment)


def content_hash(entry: dict[str, Any]) -> str:
    """A stable identity for entries with neither guid nor link (title, summary, dates)."""
    material = {
        key: str(dict.get(entry, key) or "")
        for key in ("title", "summary", "published", "updated", "author")
        if key in entry
    }
    digest = hashlib.sha256(json.dumps(material, sort_keys=True).encode("utf-8")).hexdigest()
    return f"sha256:{digest[:32]}"


def entry_identity(entry: dict[str, Any], canonical_url: str | None) -> str:
    """guid/id first (what publishers promise stable), then the canonical link, then a hash."""
    guid = entry.get("id")
    if isinstance(guid, str) and guid.strip():
        return guid.strip()
    if canonical_url:
        return canonical_url
    return content_hash(entry)


def _as_datetime(value: Any) -> datetime | None:
    if not isinstance(value, time.struct_time):
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), UTC)
    except (OverflowError, ValueError, OSError):
        return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _ttl_seconds(feed: Mapping[str, Any]) -> float | None:
    ttl = feed.get("ttl")
    if isinstance(ttl, str) and ttl.strip().isdigit():
        return float(ttl.strip()) * 60.0
    return None


def gunzip_stray(body: bytes, *, limit: int = MAX_GUNZIPPED_BYTES) -> bytes | None:
    """The content of a body that is still gzip-compressed, or None.

    Some servers gzip a feed file but send it without ``Content-Encoding``; feedparser then sees
    binary noise. Decompression is capped so that a small bomb cannot exhaust memory.
    """
    if not body.startswith(GZIP_MAGIC):
        return None
    decompressor = zlib.decompressobj(wbits=31)
    try:
        content = decompressor.decompress(body, limit + 1)
    except zlib.error:
        return None
    return content if len(content) <= limit else None


def entity_expansion_bytes(body: bytes) -> int:
    """How many bytes the body's own entity references (declared in its DOCTYPE) expand to.

    Nested declarations are followed; a cycle or a nesting deeper than ten counts as unbounded.
    """
    subset = _INTERNAL_SUBSET.search(body[:_PROLOG_BYTES])
    if subset is None:
        return 0
    values = {m[1]: m[3] for m in _ENTITY_DECLARATION.finditer(subset[1])}
    if not values:
        return 0
    unbounded = MAX_ENTITY_EXPANSION_BYTES + 1
    sizes: dict[bytes, int] = {}

    def size(name: bytes, depth: int) -> int:
        if depth > 10:
            return unbounded
        if name not in sizes:
            value = values[name]
            total = len(value)
            for other in values:
                references = value.count(b"&" + other + b";")
                if references:
                    total += references * size(other, depth + 1)
            sizes[name] = min(total, unbounded)
        return sizes[name]

    rest = body[subset.end() :]
    total = sum(rest.count(b"&" + name + b";") * size(name, 0) for name in values)
    return min(total, unbounded)


def without_userinfo(url: str) -> str:
    """``url`` without ``user:password@``.

    A feed's credentials are for the feed: relative entry links resolved against its URL would
    otherwise carry them into every entry's URL, and from there into the topics, the article
    identities (which would all change when the password does) and requests to article pages.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _resolved(feed_url: str, reference: str) -> str:
    """``reference`` (a Content-Location, a channel link) resolved against ``feed_url``, without
    userinfo; ``feed_url`` itself when the reference is malformed, such as "http://[" ."""
    try:
        return without_userinfo(urljoin(feed_url, reference))
    except ValueError:
        return feed_url


def parse_feed(body: bytes, *, url: str, headers: Mapping[str, str] | None = None) -> ParsedFeed:
    """Parse a feed body; never raises for malformed input (feedparser's ``bozo`` says why)."""
    url = without_userinfo(url)
    unpacked = gunzip_stray(body)
    if unpacked is not None:
        body = unpacked
    response_headers: dict[str, str] | None = None
    if headers is not None:
        response_headers = {k.lower(): v for k, v in headers.items()}
        # feedparser resolves relative links against Content-Location; give it the feed's URL.
        response_headers["content-location"] = _resolved(
            url, response_headers.get("content-location", "")
        )
    try:
        parsed, strict_failure = feedparser_parse(body, response_headers)
    except EntityExpansionLimit as exc:
        return ParsedFeed(
            title=None,
            version="",
            entries=(),
            bozo_exception="EntityExpansionLimit",
            bozo_message=str(exc),
            ttl_seconds=None,
            gunzipped=unpacked is not None,
        )
    except Exception as exc:  # noqa: BLE001 - both of feedparser's parsers failed: say why
        return ParsedFeed(
            title=None,
            version="",
            entries=(),
            bozo_exception=type(exc).__name__,
            bozo_message=f"feedparser could not read the body: {exc}",
            ttl_seconds=None,
            gunzipped=unpacked is not None,
        )
    # The channel's own link may be relative too (feedparser resolves it only given headers).
    base = _resolved(url, str(parsed.feed.get("link") or ""))
    entries = tuple(_to_entry(raw, base) for raw in parsed.entries)
    bozo_exception: str | None = None
    bozo_message: str | None = None
    if strict_failure is not None:
        bozo_exception = type(strict_failure).__name__
        bozo_message = (
            f"feedparser's XML parser failed ({strict_failure}); "
            "the entries come from its lenient parser"
        )
    elif parsed.get("bozo"):
        exception = parsed.get("bozo_exception")
        bozo_exception = type(exception).__name__ if exception is not None else "unknown"
        bozo_message = str(exception) if exception is not None else None
    return ParsedFeed(
        title=_text(parsed.feed.get("title")),
        version=str(parsed.get("version") or ""),
        entries=entries,
        bozo_exception=bozo_exception,
        bozo_message=bozo_message,
        ttl_seconds=_ttl_seconds(parsed.feed),
        gunzipped=unpacked is not None,
    )


class EntityExpansionLimit(ValueError):
    """The body's DOCTYPE entities would expand beyond ``MAX_ENTITY_EXPANSION_BYTES``."""


def feedparser_parse(
    body: bytes, response_headers: dict[str, str] | None
) -> tuple[Any, Exception | None]:
    """feedparser's result, and the error of its XML parser when only the lenient one could read
    the body; every caller of feedparser goes through here (the poller, replay's paging).

    A body whose own entities would expand beyond ``MAX_ENTITY_EXPANSION_BYTES`` is not
    parsed: :class:`EntityExpansionLimit`.

    feedparser falls back to its lenient parser on XML syntax errors, but some damaged bodies
    make its XML parser raise other errors (a ValueError from a mangled namespaced tag), which
    escape. Then the body is read again with the lenient parser alone. feedparser has no option
    for that; its module flag is read on each call, and this runs synchronously.

    The body goes in as a stream: given bytes, feedparser first tries them as a file name, so a
    server answering "/etc/hostname" would have had that local file read and published.
    """
    if entity_expansion_bytes(body) > MAX_ENTITY_EXPANSION_BYTES:
        raise EntityExpansionLimit(
            f"the entities declared in the feed's DOCTYPE would expand to more than "
            f"{MAX_ENTITY_EXPANSION_BYTES} bytes; not parsed"
        )
    try:
        return feedparser.parse(io.BytesIO(body), response_headers=response_headers), None
    except Exception as exc:  # noqa: BLE001 - any escape from the XML parser gets the fallback
        saved = feedparser_api._XML_AVAILABLE  # noqa: SLF001
        feedparser_api._XML_AVAILABLE = False  # noqa: SLF001
        try:
            return feedparser.parse(io.BytesIO(body), response_headers=response_headers), exc
        finally:
            feedparser_api._XML_AVAILABLE = saved  # noqa: SLF001


def _to_entry(raw: dict[str, Any], base: str) -> ParsedEntry:
    link = _text(raw.get("link"))
    canonical = canonicalize_url(link, base=base)
    return ParsedEntry(
        entry_id=entry_identity(raw, canonical),
        url=canonical,
        link=link,
        guid=_text(raw.get("id")),
        title=_text(raw.get("title")) or "",
        summary=_text(raw.get("summary")),
        author=_text(raw.get("author")),
        published=_as_datetime(dict.get(raw, "published_parsed")),
        # dict.get: FeedParserDict maps a missing "updated" to "published" with a warning.
        updated=_as_datetime(dict.get(raw, "updated_parsed")),
    )


def feed_entry(
    entry: ParsedEntry, *, feed_url: str, feed_title: str | None, first_seen: datetime
) -> FeedEntry:
    """The feed entry message for an entry that has a canonical URL."""
    if entry.url is None:
        raise ValueError("an entry without a usable link has no feed_entry message")
    return FeedEntry(
        entry_id=entry.entry_id,
        feed_url=redact_url(feed_url),
        feed_title=feed_title,
        url=entry.url,
        link=entry.link,
        guid=entry.guid,
        title=entry.title,
        summary=entry.summary,
        author=entry.author,
        published=iso_utc(entry.published) if entry.published else None,
        updated=iso_utc(entry.updated) if entry.updated else None,
        first_seen=iso_utc(first_seen),
    )
