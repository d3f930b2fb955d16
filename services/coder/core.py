"""The coder's pure core over whole articles, shared by the service, ``wirewatch code`` and replay.

``code_articles(articles, coder_version=...)`` codes a batch and returns the aggregated events;
``EventStore`` + ``code_article`` are the incremental form the Faust app drives one article at a
time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from services.coder import CODER_VERSION
from services.coder.aggregate import (
    ArticleRef,
    Update,
    best_mentions,
    identity_key,
    merge_mention,
)
from services.coder.coding import Coder, Mention, default_coder
from services.common.errors import WirewatchError
from services.common.times import parse_timestamp

logger = logging.getLogger(__name__)


class ArticleInputError(WirewatchError):
    """An article lacks what coding needs (an id and some text)."""


@dataclass(frozen=True)
class ArticleInput:
    """What the coder reads from an article, whichever form it came in."""

    article_id: str
    url: str | None
    title: str
    text: str
    source: str | None
    published: date | None
    first_seen: str
    story_id: str | None = None

    @property
    def ref(self) -> ArticleRef:
        return ArticleRef(self.article_id, self.url, self.source, self.first_seen, self.story_id)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def article_from_mapping(raw: Mapping[str, Any], *, story_id: str | None = None) -> ArticleInput:
    """Accept the offline form ``{id, url, title, text, source, published}`` or ``article.v1``."""
    article_id = raw.get("article_id") or raw.get("id")
    text = raw.get("text")
    if not article_id or not isinstance(text, str) or not text.strip():
        raise ArticleInputError("an article needs an 'id' (or 'article_id') and a non-empty 'text'")
    published_at = parse_timestamp(raw.get("published"))
    first_seen_at = parse_timestamp(raw.get("first_seen")) or published_at
    first_seen = _iso(first_seen_at) if first_seen_at else "1970-01-01T00:00:00.000Z"
    return ArticleInput(
        article_id=str(article_id),
        url=raw.get("url"),
        title=str(raw.get("title") or ""),
        text=text,
        source=raw.get("source") or raw.get("site_name"),
        published=published_at.date() if published_at else None,
        first_seen=first_seen,
        story_id=story_id,
    )


def article_mentions(coder: Coder, article: ArticleInput) -> list[Mention]:
    """The article's mentions, one per event identity, strongest first."""
    return articles_mentions(coder, [article])[0]


def articles_mentions(coder: Coder, articles: Sequence[ArticleInput]) -> list[list[Mention]]:
    """``article_mentions`` of each article, their sentences parsed together."""
    today = datetime.now(UTC).date()
    texts = [
        (f"{a.title}\n{a.text}" if a.title else a.text, a.published or today) for a in articles
    ]
    return [
        sorted(best_mentions(mentions), key=lambda m: -m.confidence)
        for mentions in coder.code_texts(texts)
    ]


class EventStore:
    """Buckets of events by identity key, over any mutable mapping (a dict or a Faust table)."""

    def __init__(self, buckets: MutableMapping[str, Any], *, coder_version: str) -> None:
        self.buckets = buckets
        self.coder_version = coder_version

    def prepare(
        self, mention: Mention, article: ArticleRef
    ) -> tuple[Update | None, Callable[[], None]]:
        """The update ``mention`` makes, and the function that stores it.

        The service emits the event first and stores after, so a crash in between redelivers
        the mention and emits again rather than leaving the topic behind the table.
        """
        key = identity_key(mention)
        bucket = list(self.buckets.get(key) or [])
        new_bucket, update = merge_mention(
            bucket, mention, article, coder_version=self.coder_version
        )

        def store() -> None:
            if update is not None:
                self.buckets[key] = new_bucket

        return update, store

    def apply(self, mention: Mention, article: ArticleRef) -> Update | None:
        update, store = self.prepare(mention, article)
        store()
        return update


def code_article(coder: Coder, store: EventStore, article: ArticleInput) -> list[Update]:
    """Code one article into the store; the events it created or updated, in order."""
    updates = []
    for mention in article_mentions(coder, article):
        update = store.apply(mention, article.ref)
        if update is not None:
            updates.append(update)
    return updates


def code_articles(
    articles: Iterable[Mapping[str, Any]],
    *,
    coder_version: str = CODER_VERSION,
    coder: Coder | None = None,
) -> list[dict[str, Any]]:
    """Code articles (offline form or ``article.v1``) into aggregated ``diplomatic_event.v1``s.

    Deterministic: the same articles in the same order give the same events and ``event_id``s,
    which is what replaying history relies on. Events come out in order of creation.
    """
    coder = coder or default_coder()
    buckets: dict[str, Any] = {}
    store = EventStore(buckets, coder_version=coder_version)
    order: list[str] = []
    latest: dict[str, dict[str, Any]] = {}
    for raw in articles:
        article = article_from_mapping(raw, story_id=raw.get("story_id"))
        for update in code_article(coder, store, article):
            event_id = update.event["event_id"]
            if update.replaces:
                for replaced in update.replaces:
                    if replaced in latest:
                        del latest[replaced]
                        order[order.index(replaced)] = event_id
                order = list(dict.fromkeys(order))  # joined events keep the first one's place
            if event_id not in latest and event_id not in order:
                order.append(event_id)
            latest[event_id] = update.event
    return [latest[event_id] for event_id in order]
