"""One event per real-world event: mentions from many articles update one ``diplomatic_event.v1``.

Mentions share an *identity* when they have the same actors (by country, or IGO) and the same
action family (``families`` in data/verbs.yaml, else the CAMEO root: an announced meeting, 036,
belongs to the meeting family 04, whose actors are taken as a pair in either order since a call
or talks involve both sides alike; appeals and demands are one "request" family),
and their anchor dates (planned date, else event date) are chained by gaps of at most
``WINDOW_DAYS``: an event is a run of anchor dates with no larger gap (single linkage on dates),
so a mention dated between two events joins them into one. That grouping, and so which
articles an event holds, does not depend on the order articles arrive in, and an article
already counted under an identity is never counted again, however often it is redelivered.
``event_id`` hashes the identity with the event's earliest anchor date, so replaying articles
(in any order, across partitions) gives the same ids. When an earlier-dated mention joins an
event, or events join, ids change; the update names the ids it ``replaces`` so the service can
delete them from the compacted topic (tombstones).

Everything here is pure: a *bucket* (all events of one identity key) goes in, the updated bucket
and the changed event come out. The Faust app keeps buckets in a changelog-backed table; the
offline ``wirewatch code`` keeps them in a dict.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from typing import Any

from services.coder.actions import family_of
from services.coder.coding import Mention
from services.coder.geo import event_location

WINDOW_DAYS = 3
MAX_EVIDENCE = 20
SCHEMA_ID = "diplomatic_event.v1"
_SYMMETRIC_FAMILIES = frozenset({"04"})


@dataclass(frozen=True)
class ArticleRef:
    """The article a mention came from, as the event's evidence and counts need it."""

    article_id: str
    url: str | None
    source: str | None
    first_seen: str
    story_id: str | None = None


def identity_key(mention: Mention) -> str:
    """The aggregation key: actors and action family, without the date."""
    fam = family_of(mention.action.cameo_code)
    actors = [mention.source.key, mention.target.key]
    if fam in _SYMMETRIC_FAMILIES:
        actors.sort()
    return "|".join([*actors, fam])


def make_event_id(key: str, anchor: date) -> str:
    return hashlib.sha256(f"{key}|{anchor.isoformat()}".encode()).hexdigest()[:32]


# What an Update did to its event (the ``kind`` label of the coder's events counter).
UPDATE_KINDS = ("new", "update")


@dataclass(frozen=True)
class Update:
    """What merging one article's mention did: the event as it now stands, new or updated."""

    event: dict[str, Any]
    kind: str
    replaces: tuple[str, ...] = ()


def merge_mention(
    bucket: list[dict[str, Any]],
    mention: Mention,
    article: ArticleRef,
    *,
    coder_version: str,
) -> tuple[list[dict[str, Any]], Update | None]:
    """Fold ``mention`` into the events of its identity key.

    Returns the new bucket and the change, or None when the article was already counted
    (at-least-once delivery may bring the same article twice; it must not count twice).
    Each bucket item is ``{"anchor": first ISO date, "last_anchor": last ISO date,
    "votes": {code: n}, "event": event, ...}``; items are kept more than ``WINDOW_DAYS`` apart.
    """
    key = identity_key(mention)
    anchor = mention.anchor
    # One mention per identity and article (best_mentions), so an article already in any event
    # of this identity is a redelivery, even when that event's dates have moved since.
    if any(article.article_id in item["event"]["article_ids"] for item in bucket):
        return bucket, None
    touching = [index for index, item in enumerate(bucket) if _reaches(item, anchor)]
    if touching:
        joined = _join_items([bucket[index] for index in touching])
        old_ids = [bucket[index]["event"]["event_id"] for index in touching]
        updated = _add_article(joined, mention, article)
        first = min(date.fromisoformat(updated["anchor"]), anchor)
        last = max(date.fromisoformat(_last_anchor(updated)), anchor)
        updated["anchor"], updated["last_anchor"] = first.isoformat(), last.isoformat()
        updated["event"]["event_id"] = make_event_id(key, first)
        new_id = updated["event"]["event_id"]
        kept = [item for index, item in enumerate(bucket) if index not in touching]
        replaced = tuple(sorted({old for old in old_ids if old != new_id}))
        return [*kept, updated], Update(updated["event"], "update", replaces=replaced)
    event_id = make_event_id(key, anchor)
    event: dict[str, Any] = {
        "schema": SCHEMA_ID,
        "event_id": event_id,
        "event_date": mention.event_date.isoformat(),
        "planned_date": mention.planned_date.isoformat() if mention.planned_date else None,
        "source": mention.source.to_dict(),
        "target": mention.target.to_dict(),
        "action": mention.action.to_dict(),
        "location": _location(mention),
        "evidence": [_evidence(mention, article)],
        "article_ids": [article.article_id],
        "story_ids": [article.story_id] if article.story_id else [],
        "num_articles": 1,
        "num_sources": 1,
        "first_seen": article.first_seen,
        "last_seen": article.first_seen,
        "confidence": mention.confidence,
        "coder_version": coder_version,
    }
    item = {
        "anchor": anchor.isoformat(),
        "last_anchor": anchor.isoformat(),
        "votes": {mention.action.cameo_code: 1},
        "sources": [_source_name(article)],
        "actions": {mention.action.cameo_code: mention.action.to_dict()},
        "directions": {_direction(mention): 1},
        "actors": {_direction(mention): [mention.source.to_dict(), mention.target.to_dict()]},
        "event": event,
    }
    return [*bucket, item], Update(event, "new")


def _last_anchor(item: dict[str, Any]) -> str:
    """The item's latest anchor (items stored before it was kept have only the first)."""
    return str(item.get("last_anchor") or item["anchor"])


def _reaches(item: dict[str, Any], anchor: date) -> bool:
    """Whether ``anchor`` lies within ``WINDOW_DAYS`` of one of the item's anchors.

    The item's anchors are chained by gaps of at most ``WINDOW_DAYS``, so any date between its
    first and last is close enough to one of them; only the ends need checking.
    """
    first, last = date.fromisoformat(item["anchor"]), date.fromisoformat(_last_anchor(item))
    return (first - anchor).days <= WINDOW_DAYS and (anchor - last).days <= WINDOW_DAYS


def _join_items(items: list[dict[str, Any]]) -> dict[str, Any]:
    """One item out of events that a new mention bridges: counts add up, lists are united."""
    if len(items) == 1:
        return items[0]
    items = sorted(items, key=lambda item: item["anchor"])
    first = items[0]
    votes: dict[str, int] = {}
    directions: dict[str, int] = {}
    actions: dict[str, Any] = {}
    actors: dict[str, Any] = {}
    sources: list[str] = []
    event = dict(first["event"])
    for item in items:
        for code, count in item["votes"].items():
            votes[code] = votes.get(code, 0) + count
        for direction, count in item["directions"].items():
            directions[direction] = directions.get(direction, 0) + count
        actions.update(item["actions"])
        for direction, pair in item["actors"].items():
            actors.setdefault(direction, pair)
        sources += [name for name in item["sources"] if name not in sources]
    others = [item["event"] for item in items[1:]]
    for other in others:
        event["article_ids"] = [*event["article_ids"], *other["article_ids"]]
        event["story_ids"] = [
            *event["story_ids"],
            *(story for story in other["story_ids"] if story not in event["story_ids"]),
        ]
        event["evidence"] = [*event["evidence"], *other["evidence"]][:MAX_EVIDENCE]
        event["first_seen"] = min(event["first_seen"], other["first_seen"])
        event["last_seen"] = max(event["last_seen"], other["last_seen"])
        event["planned_date"] = event["planned_date"] or other["planned_date"]
        event["location"] = event["location"] or other["location"]
        event["confidence"] = max(event["confidence"], other["confidence"])
    event["num_articles"] = len(event["article_ids"])
    event["num_sources"] = len(sources)
    return {
        **first,
        "last_anchor": max(_last_anchor(item) for item in items),
        "votes": votes,
        "actions": actions,
        "sources": sources,
        "directions": directions,
        "actors": actors,
        "event": event,
    }


def _add_article(item: dict[str, Any], mention: Mention, article: ArticleRef) -> dict[str, Any]:
    event = dict(item["event"])
    votes = dict(item["votes"])
    code = mention.action.cameo_code
    votes[code] = votes.get(code, 0) + 1
    actions = {**item["actions"], code: mention.action.to_dict()}
    best = max(votes, key=lambda c: (votes[c], c == event["action"]["cameo_code"]))
    event["action"] = actions[best]
    directions = dict(item["directions"])
    direction = _direction(mention)
    directions[direction] = directions.get(direction, 0) + 1
    actors = dict(item["actors"])
    actors.setdefault(direction, [mention.source.to_dict(), mention.target.to_dict()])
    current = f"{event['source']['cameo_code']}>{event['target']['cameo_code']}"
    leader = max(directions, key=lambda d: (directions[d], d == current))
    event["source"], event["target"] = actors[leader]
    sources = list(item["sources"])
    outlet = _source_name(article)
    if outlet not in sources:
        sources.append(outlet)
    event["article_ids"] = [*event["article_ids"], article.article_id]
    if article.story_id and article.story_id not in event["story_ids"]:
        event["story_ids"] = [*event["story_ids"], article.story_id]
    if len(event["evidence"]) < MAX_EVIDENCE:
        event["evidence"] = [*event["evidence"], _evidence(mention, article)]
    event["num_articles"] = len(event["article_ids"])
    event["num_sources"] = len(sources)
    event["first_seen"] = min(event["first_seen"], article.first_seen)
    event["last_seen"] = max(event["last_seen"], article.first_seen)
    if event["planned_date"] is None and mention.planned_date is not None:
        event["planned_date"] = mention.planned_date.isoformat()
    if event["location"] is None and mention.location is not None:
        event["location"] = _location(mention)
    corroboration = 0.05 * (event["num_sources"] - 1)
    event["confidence"] = round(
        min(0.99, max(event["confidence"], mention.confidence) + corroboration), 2
    )
    return {
        **item,
        "votes": votes,
        "actions": actions,
        "sources": sources,
        "directions": directions,
        "actors": actors,
        "event": event,
    }


def _location(mention: Mention) -> dict[str, Any] | None:
    """The stated place, geocoded with the actors' countries to tell same-named places apart."""
    if mention.location is None:
        return None
    countries = (mention.source.country, mention.target.country)
    return event_location(mention.location.name, mention.location.country, countries)


def _direction(mention: Mention) -> str:
    return f"{mention.source.cameo_code}>{mention.target.cameo_code}"


def _evidence(mention: Mention, article: ArticleRef) -> dict[str, Any]:
    return {
        "article_id": article.article_id,
        "url": article.url,
        "sentence": mention.sentence,
        "source": article.source,
    }


def _source_name(article: ArticleRef) -> str:
    if article.source:
        return article.source
    if article.url:
        host = article.url.split("//", 1)[-1].split("/", 1)[0]
        return host.lower()
    return article.article_id


def best_mentions(mentions: list[Mention]) -> list[Mention]:
    """One mention per identity within an article (an article reports an action once).

    The direction (who is source) is the one the article states most often, first on ties —
    it matters for the symmetric meeting family, where "Trump will speak with Putin" and "the
    Kremlin confirmed Putin will speak with Trump" are one event; then the most confident.
    """
    slots: dict[str, list[Mention]] = {}
    for mention in mentions:
        slots.setdefault(identity_key(mention), []).append(mention)
    chosen: list[Mention] = []
    for group in slots.values():
        counts: dict[tuple[str, str], int] = {}
        for mention in group:
            direction = (mention.source.key, mention.target.key)
            counts[direction] = counts.get(direction, 0) + 1
        best_direction = max(counts, key=lambda d: counts[d])  # first on ties (dict order)
        candidates = [m for m in group if (m.source.key, m.target.key) == best_direction]
        # A mention that dates the plan identifies the event best.
        chosen.append(max(candidates, key=lambda m: (m.planned_date is not None, m.confidence)))
    return chosen
