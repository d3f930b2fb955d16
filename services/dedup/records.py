"""How the core's objects travel: article.v1 in, dedup_result.v1 out, window records in the table.

A window record holds the fingerprint and the decision, so a worker that recovers its table from
the changelog rebuilds its index and answers a reprocessed article exactly as before.
"""

from __future__ import annotations

import base64
from array import array
from datetime import UTC, datetime
from typing import Any

from services.common import schemas
from services.dedup.engine import ArticleIn, Decision, parse_time
from services.dedup.index import WindowEntry
from services.dedup.profile import Profile
from services.dedup.similarity import Fingerprint

# An article dated more than this after it was fetched has a wrong date; its fetch time is used.
MAX_FUTURE_SECONDS = 24 * 3600


def article_event_time(article: dict[str, Any]) -> float | None:
    """The article's own time: its publication date when plausible, else when it was first seen."""
    seen = parse_time(article.get("first_seen")) or parse_time(article.get("fetched_at"))
    published = parse_time(article.get("published"))
    if published is not None and (seen is None or published <= seen + MAX_FUTURE_SECONDS):
        return published
    return seen


def article_in(article: dict[str, Any]) -> ArticleIn:
    return ArticleIn(
        article_id=str(article["article_id"]),
        title=str(article.get("title") or ""),
        text=str(article["text"]),
        event_time=article_event_time(article),
    )


def result_message(decision: Decision, article: dict[str, Any], decided_at: str) -> dict[str, Any]:
    """The ``dedup_result.v1`` message, carrying the whole article so the coder needs no join."""
    return {
        "schema": schemas.DEDUP_RESULT,
        "article_id": decision.article_id,
        "story_id": decision.story_id,
        "copy_of": decision.copy_of,
        "is_first_in_story": decision.is_first_in_story,
        "outcome": decision.outcome,
        "similarity": decision.similarity,
        "matched_article_id": decision.matched_article_id,
        "signals": list(decision.signals),
        "decided_at": decided_at,
        "article": article,
    }


def _pack(values: array[Any]) -> str:
    return base64.b64encode(values.tobytes()).decode("ascii")


def _unpack(text: str, typecode: str = "I") -> array[Any]:
    values: array[Any] = array(typecode)
    values.frombytes(base64.b64decode(text))
    return values


PROFILE_FIELDS = {
    "terms": "I",
    "term_weights": "f",
    "names": "I",
    "name_weights": "f",
    "figures": "I",
    "figure_weights": "f",
    "title": "I",
    "title_weights": "f",
}


def _pack_profile(profile: Profile) -> dict[str, str]:
    return {name: _pack(getattr(profile, name)) for name in PROFILE_FIELDS}


def _unpack_profile(stored: dict[str, str] | None) -> Profile:
    """A stored profile; a record written before profiles existed has an empty one (its article
    can still be a copy's original, but no longer draws an arriving article into its story)."""
    stored = stored or {}
    return Profile(
        **{name: _unpack(stored.get(name, ""), code) for name, code in PROFILE_FIELDS.items()}
    )


def window_record(entry: WindowEntry, decision: Decision, decided_at: str) -> dict[str, Any]:
    """A JSON-serialisable table value (arrays as base64 of 32-bit integers)."""
    fp = entry.fingerprint
    return {
        "event_time": entry.event_time,
        "story_id": entry.story_id,
        "copy_root": entry.copy_root,
        "decided_at": decided_at,
        "decision": {
            "copy_of": decision.copy_of,
            "is_first_in_story": decision.is_first_in_story,
            "outcome": decision.outcome,
            "similarity": decision.similarity,
            "matched_article_id": decision.matched_article_id,
            "signals": list(decision.signals),
            "candidates": decision.candidates,
        },
        "fingerprint": {
            "shingles": _pack(fp.shingles),
            "quotes": _pack(fp.quotes),
            "names": _pack(fp.names),
            "numbers": _pack(fp.numbers),
            "sentences": [_pack(s) for s in fp.sentences],
        },
        "profile": _pack_profile(entry.profile),
    }


def restore_record(article_id: str, record: dict[str, Any]) -> tuple[WindowEntry, Decision, str]:
    stored = record["fingerprint"]
    fp = Fingerprint(
        shingles=_unpack(stored["shingles"]),
        quotes=_unpack(stored["quotes"]),
        names=_unpack(stored["names"]),
        numbers=_unpack(stored["numbers"]),
        sentences=tuple(_unpack(s) for s in stored["sentences"]),
    )
    entry = WindowEntry(
        article_id=article_id,
        event_time=float(record["event_time"]),
        fingerprint=fp,
        story_id=record["story_id"],
        copy_root=record["copy_root"],
        profile=_unpack_profile(record.get("profile")),
    )
    d = record["decision"]
    decision = Decision(
        article_id=article_id,
        story_id=record["story_id"],
        copy_of=d["copy_of"],
        is_first_in_story=d["is_first_in_story"],
        outcome=d["outcome"],
        similarity=d["similarity"],
        matched_article_id=d["matched_article_id"],
        signals=tuple(d["signals"]),
        candidates=d.get("candidates", 0),
    )
    return entry, decision, record["decided_at"]


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
