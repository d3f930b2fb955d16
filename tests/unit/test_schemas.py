import copy
import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from services.common import schemas
from services.common.errors import SchemaValidationError


def load_example(schema_id: str) -> dict[str, Any]:
    path = schemas.schemas_dir() / "examples" / f"{schema_id}.json"
    example: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return example


@pytest.mark.parametrize("schema_id", schemas.ALL_SCHEMA_IDS)
def test_every_schema_is_a_valid_draft_2020_12_schema(schema_id: str) -> None:
    Draft202012Validator.check_schema(schemas.load_schema(schema_id))


@pytest.mark.parametrize("schema_id", schemas.ALL_SCHEMA_IDS)
def test_every_schema_has_an_example_that_validates(schema_id: str) -> None:
    schemas.validate(schema_id, load_example(schema_id))
    # A valid message gets through on the compiled check alone (the point of having it).
    assert schemas.passes_fast_check(schema_id, load_example(schema_id))


@pytest.mark.parametrize("schema_id", schemas.ALL_SCHEMA_IDS)
def test_a_missing_required_field_is_rejected_with_its_name(schema_id: str) -> None:
    required = schemas.load_schema(schema_id)["required"]
    for field in required:
        broken = copy.deepcopy(load_example(schema_id))
        del broken[field]
        with pytest.raises(SchemaValidationError, match=field):
            schemas.validate(schema_id, broken)


def test_unknown_fields_are_rejected_so_producers_cannot_drift_from_the_contract() -> None:
    entry = load_example(schemas.FEED_ENTRY) | {"surprise": 1}
    with pytest.raises(SchemaValidationError, match="surprise"):
        schemas.validate(schemas.FEED_ENTRY, entry)


def test_dedup_result_validates_the_embedded_article_against_the_article_schema() -> None:
    result = load_example(schemas.DEDUP_RESULT)
    result["article"]["article_id"] = "NOT-HEX"
    with pytest.raises(SchemaValidationError, match="article/article_id"):
        schemas.validate(schemas.DEDUP_RESULT, result)


def test_event_actor_country_must_be_iso_alpha3() -> None:
    event = load_example(schemas.DIPLOMATIC_EVENT)
    event["source"]["country"] = "US"
    assert not schemas.is_valid(schemas.DIPLOMATIC_EVENT, event)


def test_timestamps_must_be_rfc3339() -> None:
    entry = load_example(schemas.FEED_ENTRY) | {"first_seen": "yesterday"}
    with pytest.raises(SchemaValidationError, match="first_seen"):
        schemas.validate(schemas.FEED_ENTRY, entry)
