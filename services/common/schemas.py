"""The JSON Schemas in ``schemas/`` are the one source of truth for every message.

Producers validate before sending and consumers on receipt, both through :func:`validate`.
A message is checked first by the schema compiled to Python code (fastjsonschema, about twenty
times faster: a message is validated at every hop); only one it rejects goes to the reference
validator (jsonschema, Draft 2020-12), which has the last word and names the problem.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from functools import cache, partial
from pathlib import Path
from typing import Any

import fastjsonschema
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource

from services.common.errors import SchemaValidationError

FEED_ENTRY = "feed_entry.v1"
ARTICLE = "article.v1"
DEDUP_RESULT = "dedup_result.v1"
DIPLOMATIC_EVENT = "diplomatic_event.v1"
DEAD_LETTER = "dead_letter.v1"
ALL_SCHEMA_IDS = (FEED_ENTRY, ARTICLE, DEDUP_RESULT, DIPLOMATIC_EVENT, DEAD_LETTER)


def schemas_dir() -> Path:
    """Where the schema files are: ``$WIREWATCH_SCHEMAS_DIR`` or the repository's ``schemas/``."""
    configured = os.environ.get("WIREWATCH_SCHEMAS_DIR")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / "schemas"


def schema_path(schema_id: str) -> Path:
    return schemas_dir() / f"{schema_id}.schema.json"


@cache
def load_schema(schema_id: str) -> dict[str, Any]:
    with schema_path(schema_id).open(encoding="utf-8") as handle:
        schema: dict[str, Any] = json.load(handle)
    return schema


@cache
def _registry() -> Registry:
    resources = []
    for schema_id in ALL_SCHEMA_IDS:
        schema = load_schema(schema_id)
        resource = Resource.from_contents(schema)
        resources.append((schema["$id"], resource))
        resources.append((f"{schema_id}.schema.json", resource))
    return Registry().with_resources(resources)


@cache
def _format_checker() -> FormatChecker:
    return FormatChecker()


@cache
def validator_for(schema_id: str) -> Draft202012Validator:
    return Draft202012Validator(
        load_schema(schema_id), registry=_registry(), format_checker=_format_checker()
    )


@cache
def fast_validator_for(schema_id: str) -> Callable[[Any], Any]:
    """The schema compiled to Python; references resolve to the files in ``schemas/`` and
    formats are checked by the reference validator's own format checker."""
    documents = {load_schema(other)["$id"]: load_schema(other) for other in ALL_SCHEMA_IDS}

    def resolve(uri: str) -> dict[str, Any]:
        if uri not in documents:
            raise SchemaValidationError(schema_id, f"reference to an unknown schema {uri}")
        return documents[uri]

    checker = _format_checker()
    formats = {name: partial(checker.conforms, format=name) for name in checker.checkers}
    compiled: Callable[[Any], Any] = fastjsonschema.compile(
        load_schema(schema_id), handlers={"https": resolve, "http": resolve}, formats=formats
    )
    return compiled


def passes_fast_check(schema_id: str, message: Any) -> bool:
    try:
        fast_validator_for(schema_id)(message)
    except fastjsonschema.JsonSchemaException:
        return False
    return True


def validate(schema_id: str, message: Any) -> None:
    """Raise :class:`SchemaValidationError` naming the first problem when ``message`` is invalid."""
    if passes_fast_check(schema_id, message):
        return
    errors = sorted(validator_for(schema_id).iter_errors(message), key=lambda e: list(e.path))
    if errors:
        first = errors[0]
        where = "/".join(str(part) for part in first.absolute_path) or "(root)"
        raise SchemaValidationError(schema_id, f"at {where}: {first.message}")


def is_valid(schema_id: str, message: Any) -> bool:
    if passes_fast_check(schema_id, message):
        return True
    valid: bool = validator_for(schema_id).is_valid(message)
    return valid
