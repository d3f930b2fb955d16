"""The messages between the stages, named once: one frozen model a schema of ``schemas/``.

The JSON Schemas stay the contract (producers validate against them before sending); these
models give the same shapes names and types inside the code, and subscribers can import them.
``Model.from_message(value)`` reads a decoded message, ``model.to_message()`` gives it back:
the fields it was given, exactly, so reading and writing a message changes nothing in it.
Timestamps and dates stay the ISO 8601 strings the schemas carry, so that they round-trip
exactly as written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from services.common import schemas


class Message(BaseModel):
    """What every message model shares: frozen, no unknown field, its schema id always set."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    # Optional fields the schema never allows to be null: given, they must have a value.
    NOT_NULL: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _optional_fields_are_not_null(self) -> Self:
        for name in self.NOT_NULL & self.model_fields_set:
            if getattr(self, name) is None:
                raise ValueError(f"{name} may be left out but not null")
        return self

    def model_post_init(self, context: Any, /) -> None:
        # The schema id is written whether or not the constructor was given it.
        if "schema_id" in type(self).model_fields:
            self.model_fields_set.add("schema_id")

    @classmethod
    def schema_name(cls) -> str:
        """The schema id this model's messages carry."""
        return str(cls.model_fields["schema_id"].default)

    @classmethod
    def from_message(cls, message: Mapping[str, object]) -> Self:
        """The model of a decoded message (already validated against its schema, or not)."""
        return cls.model_validate(dict(message))

    def to_message(self) -> dict[str, JsonValue]:
        """The JSON object to send: every field that was given, under its schema name."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


class FeedEntry(Message):
    """One new entry of a feed (``feeds.entries``, key: canonical URL)."""

    schema_id: Literal["feed_entry.v1"] = Field(default="feed_entry.v1", alias="schema")
    entry_id: str
    feed_url: str
    feed_title: str | None = None
    url: str
    link: str | None = None
    guid: str | None = None
    title: str
    summary: str | None = None
    author: str | None = None
    published: str | None = None
    updated: str | None = None
    first_seen: str


class Timing(Message):
    fetch_seconds: float | None = None
    extract_seconds: float | None = None

    NOT_NULL = frozenset({"fetch_seconds", "extract_seconds"})


class Article(Message):
    """An extracted article (``articles.extracted``, key: canonical URL)."""

    schema_id: Literal["article.v1"] = Field(default="article.v1", alias="schema")
    article_id: str
    url: str
    fetched_url: str | None = None
    entry_id: str | None = None
    feed_url: str | None = None
    title: str
    text: str
    author: str | None = None
    published: str | None = None
    language: str | None = None
    site_name: str | None = None
    source: str | None = None
    content_hash: str
    fetched_at: str
    first_seen: str | None = None
    timing: Timing | None = None

    NOT_NULL = frozenset({"timing"})


class DedupResult(Message):
    """Where an article stands among those of the window (``articles.deduplicated``, key:
    article id); carries the whole article so the coder needs no join."""

    schema_id: Literal["dedup_result.v1"] = Field(default="dedup_result.v1", alias="schema")
    article_id: str
    story_id: str
    copy_of: str | None
    is_first_in_story: bool
    outcome: Literal["new_story", "copy", "same_story", "rewrite"] | None = None
    similarity: float
    matched_article_id: str | None = None
    signals: tuple[str, ...]
    decided_at: str | None = None
    article: Article

    NOT_NULL = frozenset({"outcome", "decided_at"})


class Actor(Message):
    name: str
    country: str | None
    role: str
    cameo_code: str | None = None
    entity: str | None = None


class Action(Message):
    cameo_code: str
    label: str
    plover: str
    quad_class: int
    goldstein: float


class Location(Message):
    name: str
    country: str | None = None
    geonames_id: int | None = None
    latitude: float | None = None
    longitude: float | None = None
    feature_class: str | None = None
    feature_code: str | None = None
    precision: Literal["city", "region", "country"] | None = None

    NOT_NULL = frozenset(
        {"geonames_id", "latitude", "longitude", "feature_class", "feature_code", "precision"}
    )


class Evidence(Message):
    article_id: str
    url: str | None
    sentence: str
    source: str | None = None


class DiplomaticEvent(Message):
    """One real-world diplomatic event, updated as more articles report it
    (``events.diplomatic``, compacted, key: event id)."""

    schema_id: Literal["diplomatic_event.v1"] = Field(default="diplomatic_event.v1", alias="schema")
    event_id: str
    event_date: str
    planned_date: str | None = None
    source: Actor
    target: Actor
    action: Action
    location: Location | None = None
    evidence: tuple[Evidence, ...]
    article_ids: tuple[str, ...]
    story_ids: tuple[str, ...] | None = None
    num_articles: int
    num_sources: int
    first_seen: str
    last_seen: str
    confidence: float
    coder_version: str

    NOT_NULL = frozenset({"story_ids"})


class DeadLetter(Message):
    """A message or work item that could not be processed, with why (``<topic>.dlq``, key: the
    original key)."""

    schema_id: Literal["dead_letter.v1"] = Field(default="dead_letter.v1", alias="schema")
    reason: str
    error: str
    service: str
    failed_at: str
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    key_b64: str | None = None
    original_b64: str | None = None
    attempts: int | None = None
    details: dict[str, JsonValue] | None = None

    NOT_NULL = frozenset({"attempts", "details"})


# Each message model by the schema id it carries.
MODELS: dict[str, type[Message]] = {
    schemas.FEED_ENTRY: FeedEntry,
    schemas.ARTICLE: Article,
    schemas.DEDUP_RESULT: DedupResult,
    schemas.DIPLOMATIC_EVENT: DiplomaticEvent,
    schemas.DEAD_LETTER: DeadLetter,
}
