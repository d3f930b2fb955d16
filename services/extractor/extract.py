"""The extractor's pure core: page bytes in, article fields out (trafilatura does the reading).

Nothing here knows about Kafka or HTTP, so the service (``app.py``), the offline command
(``wirewatch extract PAGE.html``) and the quality benchmark all run exactly this code.
"""

from __future__ import annotations

import codecs
import hashlib
import logging
import re
import time
import unicodedata
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import trafilatura
from charset_normalizer import from_bytes
from htmldate import find_date
from lxml.html import HtmlElement
from trafilatura.metadata import (
    META_URL,
    examine_meta,
    extract_author,
    extract_meta_json,
    extract_sitename,
    extract_title,
    extract_url,
)
from trafilatura.settings import Document
from trafilatura.utils import load_html

from services.common.kafka import Failure
from services.common.messages import Article, FeedEntry, Timing
from services.common.times import utc_now_iso

logger = logging.getLogger(__name__)

# Where a page may declare its own encoding; browsers look in the first 1024 bytes, pages in
# the wild put the declaration a little later, so look a bit further.
_META_CHARSET = re.compile(
    rb"""<meta[^>]+charset\s*=\s*["']?\s*([a-zA-Z0-9_.:-]+)""", re.IGNORECASE
)
_HEADER_CHARSET = re.compile(r"""charset\s*=\s*["']?([a-zA-Z0-9_.:-]+)""", re.IGNORECASE)
_TAG_END = r"""(?:[-_][a-zA-Z0-9]{1,8})*["'\s/>]"""
_LANGUAGE_DECLARATIONS = (
    re.compile(r"""<html\b[^>]*?\s(?:xml:)?lang\s*=\s*["']?([a-zA-Z]{2,3})""" + _TAG_END, re.I),
    re.compile(
        r"""<meta[^>]+http-equiv\s*=\s*["']?content-language["']?[^>]+content\s*=\s*["']?"""
        r"""([a-zA-Z]{2,3})""" + _TAG_END,
        re.I,
    ),
    re.compile(
        r"""<meta[^>]+property\s*=\s*["']og:locale["'][^>]+content\s*=\s*["']([a-zA-Z]{2,3})"""
        + _TAG_END,
        re.I,
    ),
)
_SNIFF_BYTES = 4096
# htmldate: publication date from markup and URL only (text mentions are often other dates).
DATE_OPTIONS: dict[str, Any] = {"extensive_search": False, "original_date": True}


@dataclass(frozen=True)
class ExtractedPage:
    """What trafilatura found in one page (plus the page's declared language)."""

    text: str
    title: str | None
    author: str | None
    published: str | None
    language: str | None
    site_name: str | None
    canonical_url: str | None
    encoding: str
    extract_seconds: float


def _codec(name: str | bytes) -> str | None:
    """The Python codec for a declared charset name, or None when it names no known codec."""
    text = name.decode("ascii", "ignore") if isinstance(name, bytes) else name
    try:
        return codecs.lookup(text.strip()).name
    except LookupError:
        return None


def declared_charset(content_type: str | None) -> str | None:
    """The codec named by a Content-Type header's ``charset`` parameter, if any."""
    if not content_type:
        return None
    match = _HEADER_CHARSET.search(content_type)
    return _codec(match.group(1)) if match else None


def decode_html(body: bytes, content_type: str | None = None) -> tuple[str, str]:
    """Decode page bytes without mangling them; returns ``(text, encoding used)``.

    Order: byte-order mark, the HTTP charset, the page's own ``<meta charset>``, strict UTF-8,
    then charset-normalizer's guess. Declarations are trusted only when the bytes decode
    with them, because pages often lie; a guess is the last resort, never the first.
    """
    for bom, name in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
                      (codecs.BOM_UTF16_BE, "utf-16")):  # fmt: skip
        if body.startswith(bom):
            return body.decode(name, errors="replace"), name
    candidates: list[str] = []
    header = declared_charset(content_type)
    if header:
        candidates.append(header)
    meta = _META_CHARSET.search(body[:_SNIFF_BYTES])
    if meta:
        codec = _codec(meta.group(1))
        if codec:
            candidates.append(codec)
    candidates.append("utf-8")
    for codec in candidates:
        if codec in ("utf-16", "utf-16-le", "utf-16-be", "utf-32"):
            continue  # declared in ASCII, so the page is not really UTF-16
        try:
            return body.decode(codec), codec
        except (UnicodeDecodeError, LookupError):
            continue
    best = from_bytes(body).best()
    if best is not None and best.encoding:
        return str(best), best.encoding
    return body.decode("utf-8", errors="replace"), "utf-8"


def article_id_for(url: str) -> str:
    """Stable id of an article: the first 32 hex digits of the SHA-256 of its canonical URL."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:32]


def content_hash(text: str) -> str:
    """SHA-256 of the extracted text, so consumers can tell a changed article from a replay."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _same_site(host_a: str, host_b: str) -> bool:
    a, b = host_a.lower().removeprefix("www."), host_b.lower().removeprefix("www.")
    return a == b or a.endswith("." + b) or b.endswith("." + a)


def choose_canonical_url(fetched_url: str, declared: str | None) -> str:
    """The page's own canonical link when it is an http(s) URL on the same site, else ours.

    A canonical link to another site (syndication partners, a CMS's misconfigured home page)
    would merge unrelated pages under one key, so only same-site links are believed.
    """
    if not declared:
        return fetched_url
    parts, ours = urlsplit(declared), urlsplit(fetched_url)
    if parts.scheme not in ("http", "https") or not parts.hostname or not ours.hostname:
        return fetched_url
    if not _same_site(parts.hostname, ours.hostname) or parts.path in ("", "/"):
        return fetched_url
    return declared


def page_language(html: str) -> str | None:
    """The page's declared language as a lower-case primary subtag (``en-GB`` → ``en``).

    Read from ``<html lang>``, then Content-Language and og:locale meta tags, with patterns
    rather than a second parse (trafilatura parses the page once, for everything else).
    """
    head = html[: _SNIFF_BYTES * 4]
    for pattern in _LANGUAGE_DECLARATIONS:
        match = pattern.search(head)
        if match:
            return match.group(1).lower()
    return None


def _clean(value: Any) -> str | None:
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text or None


def drop_leading_title(text: str, title: str | None) -> str:
    """The body without a first line that only repeats the headline (kept in ``title``)."""
    text = text.strip()
    if not title:
        return text
    first, _, rest = text.partition("\n")
    if " ".join(first.split()) == " ".join(title.split()):
        return rest.strip()
    return text


def page_metadata(tree: HtmlElement, url: str | None) -> Document:
    """trafilatura's metadata of a parsed page, for the fields an article carries.

    The same steps as ``trafilatura.metadata.extract_metadata`` for title, author, canonical
    URL, date and site name, in its order, but without its search for categories, tags and a
    licence: ``article.v1`` has no place for them, and they cost about a tenth of a page's
    extraction. A unit test checks the fields equal trafilatura's own on the evaluation pages.
    """
    metadata = examine_meta(tree)
    if metadata.author and " " not in metadata.author:
        metadata.author = None  # trafilatura drops a one-word author from the meta tags
    try:
        metadata = extract_meta_json(tree, metadata)
    except Exception as exc:  # trafilatura guards this step too: its JSON-LD reader has bugs
        logger.info("JSON-LD metadata not read from %s: %s", url, exc)
    metadata.title = metadata.title or extract_title(tree)
    metadata.author = metadata.author or extract_author(tree)
    metadata.url = metadata.url or extract_url(tree, url)
    metadata.date = find_date(tree, url=metadata.url, **DATE_OPTIONS)
    metadata.sitename = metadata.sitename or extract_sitename(tree)
    if metadata.sitename:
        metadata.sitename = metadata.sitename.lstrip("@")
        if (
            metadata.sitename
            and "." not in metadata.sitename
            and not metadata.sitename[0].isupper()
        ):
            metadata.sitename = metadata.sitename.title()
    elif metadata.url and (match := META_URL.match(metadata.url)):
        metadata.sitename = match[1]
    metadata.clean_and_trim()
    return metadata


def extract_page(
    body: bytes, *, url: str | None = None, content_type: str | None = None
) -> ExtractedPage | Failure:
    """Extract the article of one HTML page; an empty result is a ``Failure``, not an error.

    trafilatura runs in ``fast`` mode (no readability/jusText backup pass) on the tree the
    metadata was read from: on the 181-page benchmark this scores above the default mode's body
    text (``make bench-extract-quality``) at about 70% of the cost of default mode plus
    metadata, which is what lets two cores beat a bare single-process loop. Dates come from
    markup, not from scanning the text, and prefer the original publication date over updates.
    Decoding respects the page's declared charset.
    """
    started = time.perf_counter()
    html, encoding = decode_html(body, content_type)
    tree = load_html(html)
    document = None
    if tree is not None:
        metadata = page_metadata(tree, url)
        document = trafilatura.bare_extraction(
            tree,
            url=url or metadata.url,
            include_comments=False,
            fast=True,
            output_format="python",
        )
    text = ""
    if isinstance(document, Document):
        text = drop_leading_title(unicodedata.normalize("NFC", document.text or ""), metadata.title)
    if not isinstance(document, Document) or not text:
        return Failure(
            "empty_extraction",
            "trafilatura found no article text in the page",
            {"bytes": len(body), "encoding": encoding},
        )
    return ExtractedPage(
        text=text,
        title=_clean(metadata.title),
        author=_clean(metadata.author),
        published=_clean(metadata.date),
        language=page_language(html),
        site_name=_clean(metadata.sitename),
        canonical_url=_clean(metadata.url),
        encoding=encoding,
        extract_seconds=time.perf_counter() - started,
    )


def choose_published(from_page: str | None, from_feed: str | None) -> str | None:
    """The page's own date, unless the feed gives the same day with a time (more precise)."""
    if from_page and from_feed and len(from_page) == 10 and from_feed.startswith(from_page):
        return from_feed
    return from_page or from_feed


def build_article(
    page: ExtractedPage,
    *,
    fetched_url: str,
    entry: FeedEntry | None = None,
    fetch_seconds: float | None = None,
    fetched_at: str | None = None,
) -> Article:
    """The article for an extracted page (and the feed entry it came from)."""
    url = choose_canonical_url(entry.url if entry else fetched_url, page.canonical_url)
    timing = Timing(
        extract_seconds=round(page.extract_seconds, 6),
        **({} if fetch_seconds is None else {"fetch_seconds": round(max(fetch_seconds, 0.0), 6)}),
    )
    return Article(
        article_id=article_id_for(url),
        url=url,
        fetched_url=fetched_url,
        entry_id=entry.entry_id if entry else None,
        feed_url=entry.feed_url if entry else None,
        title=page.title or (entry.title if entry else ""),
        text=page.text,
        author=page.author or (entry.author if entry else None),
        published=choose_published(page.published, entry.published if entry else None),
        language=page.language,
        site_name=page.site_name,
        source=page.site_name or urlsplit(fetched_url).hostname,
        content_hash=content_hash(page.text),
        fetched_at=fetched_at or utc_now_iso(),
        first_seen=entry.first_seen if entry else None,
        timing=timing,
    )
