"""Which documents make up a feed's full history (RFC 5005, Feed Paging and Archiving).

A *complete* feed (``fh:complete``) holds every entry in one document. An *archived* feed links
the subscription document to older archive documents with ``prev-archive``, each archive to the
one before it. A *paged* feed links pages with ``next``. Following ``prev-archive`` and ``next``
from the subscription document, each document once, reaches the whole history of either kind.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from services.poller.feeds import EntityExpansionLimit, feedparser_parse

FOLLOWED_RELATIONS = ("prev-archive", "next")


@dataclass(frozen=True)
class PagingLinks:
    """The history links of one feed document (absolute URLs)."""

    prev_archive: str | None
    next_page: str | None
    complete: bool

    def following(self) -> list[str]:
        """The documents to read after this one; none for a complete feed."""
        if self.complete:
            return []
        return [url for url in (self.prev_archive, self.next_page) if url]


def links_from_feed(feed: Mapping[str, Any]) -> PagingLinks:
    """Read the paging links from feedparser's ``feed`` mapping."""
    by_relation: dict[str, str] = {}
    raw_links: Iterable[Any] = feed.get("links") or ()
    for link in raw_links:
        relation, href = link.get("rel"), link.get("href")
        if relation in FOLLOWED_RELATIONS and isinstance(href, str) and href.strip():
            by_relation.setdefault(relation, href.strip())
    return PagingLinks(
        prev_archive=by_relation.get("prev-archive"),
        next_page=by_relation.get("next"),
        complete="fh_complete" in feed,
    )


def paging_links(body: bytes, *, url: str) -> PagingLinks:
    """The paging links of a feed body fetched from ``url`` (relative links resolved)."""
    try:
        parsed, _ = feedparser_parse(body, {"content-location": url})
    except EntityExpansionLimit:
        return links_from_feed({})  # not parsed, as the poller does not parse it
    return links_from_feed(parsed.feed)


class HistoryWalk:
    """The order to read a feed's documents in: each once, at most ``max_pages``.

    Archives can link in a loop (a misconfigured server pointing an archive at itself), so a
    document already read is never queued again.
    """

    def __init__(self, start: str, *, max_pages: int) -> None:
        self.queue = [start]
        self.seen = {start}
        self.max_pages = max_pages
        self.read = 0

    def next_url(self) -> str | None:
        if not self.queue or self.read >= self.max_pages:
            return None
        self.read += 1
        return self.queue.pop(0)

    def add(self, links: PagingLinks) -> None:
        for url in links.following():
            if url not in self.seen:
                self.seen.add(url)
                self.queue.append(url)

    @property
    def truncated(self) -> bool:
        """Documents were left unread because of ``max_pages``."""
        return bool(self.queue)
