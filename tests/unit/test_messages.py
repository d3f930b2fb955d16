"""The message models match the schemas: each example round-trips exactly, field for field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from services.common import schemas
from services.common.messages import (
    MODELS,
    Action,
    Actor,
    Article,
    DeadLetter,
    DedupResult,
    DiplomaticEvent,
    Evidence,
    FeedEntry,
    Location,
    Message,
    Timing,
)

ROOT = Path(__file__).resolve().parents[2]


def example(schema_id: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads((ROOT / f"schemas/examples/{schema_id}.json").read_text())
    return value


def schema(schema_id: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads((ROOT / f"schemas/{schema_id}.schema.json").read_text())
    return value


def test_every_schema_has_a_model() -> None:
    assert set(MODELS) == set(schemas.ALL_SCHEMA_IDS)


@pytest.mark.parametrize("schema_id", sorted(MODELS))
def test_the_schema_example_round_trips_exactly(schema_id: str) -> None:
    message = example(schema_id)
    model = MODELS[schema_id].from_message(message)
    assert model.to_message() == message
    schemas.validate(schema_id, model.to_message())


@pytest.mark.parametrize("schema_id", sorted(MODELS))
def test_an_optional_field_left_out_stays_out(schema_id: str) -> None:
    required = set(schema(schema_id)["required"])
    for field in set(example(schema_id)) - required:
        message = {k: v for k, v in example(schema_id).items() if k != field}
        schemas.validate(schema_id, message)
        assert MODELS[schema_id].from_message(message).to_message() == message, field


def object_schemas() -> list[tuple[type[Message], dict[str, Any]]]:
    """Each model beside the object schema it stands for, nested objects included."""
    event = schema(schemas.DIPLOMATIC_EVENT)
    return [
        (FeedEntry, schema(schemas.FEED_ENTRY)),
        (Article, schema(schemas.ARTICLE)),
        (Timing, schema(schemas.ARTICLE)["properties"]["timing"]),
        (DedupResult, schema(schemas.DEDUP_RESULT)),
        (DiplomaticEvent, event),
        (Actor, event["$defs"]["actor"]),
        (Action, event["properties"]["action"]),
        (Location, event["properties"]["location"]["anyOf"][1]),
        (Evidence, event["properties"]["evidence"]["items"]),
        (DeadLetter, schema(schemas.DEAD_LETTER)),
    ]


def nullable(prop: dict[str, Any]) -> bool:
    kinds = prop.get("type", [])
    alternatives = prop.get("anyOf", [])
    return "null" in kinds or {"type": "null"} in alternatives


@pytest.mark.parametrize(
    "model, object_schema", object_schemas(), ids=[m.__name__ for m, _ in object_schemas()]
)
def test_fields_match_the_schema(model: type[Message], object_schema: dict[str, Any]) -> None:
    fields = {field.alias or name: field for name, field in model.model_fields.items()}
    properties = object_schema["properties"]
    assert set(fields) == set(properties)
    # The schema id is required and always written, so the model defaults it.
    required = {name for name, field in fields.items() if field.is_required() or name == "schema"}
    assert required == set(object_schema.get("required", []))
    # A field the schema lets be absent but never null is refused as null.
    optional_not_null = {
        name for name in set(properties) - required if not nullable(properties[name])
    }
    assert optional_not_null == model.NOT_NULL


def test_a_model_refuses_unknown_fields_null_where_not_allowed_and_change() -> None:
    entry = example(schemas.FEED_ENTRY)
    with pytest.raises(ValidationError):
        FeedEntry.from_message({**entry, "colour": "red"})
    with pytest.raises(ValidationError, match="not null"):
        Article.from_message({**example(schemas.ARTICLE), "timing": None})
    model = FeedEntry.from_message(entry)
    with pytest.raises(ValidationError):
        model.title = "changed"  # type: ignore[misc]


def test_a_model_built_in_code_writes_its_schema_id_and_what_it_was_given() -> None:
    entry = FeedEntry(
        entry_id="e1", feed_url="https://a/feed", url="https://a/1", title="t", first_seen="x"
    )
    assert entry.to_message() == {
        "schema": "feed_entry.v1",
        "entry_id": "e1",
        "feed_url": "https://a/feed",
        "url": "https://a/1",
        "title": "t",
        "first_seen": "x",
    }
    nested = DedupResult.from_message(example(schemas.DEDUP_RESULT))
    assert isinstance(nested.article, Article) and isinstance(nested.article, BaseModel)
    assert nested.to_message()["article"] == example(schemas.ARTICLE)
