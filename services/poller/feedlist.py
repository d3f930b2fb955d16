"""The feed list: a YAML file (``feeds: [{url, name}]``) or an OPML export from a feed reader."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml
from defusedxml import ElementTree
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from services.common.errors import ConfigurationError
from services.common.redact import redact_url

logger = logging.getLogger(__name__)


class FeedSpec(BaseModel):
    """One configured feed; ``name`` is the metrics label, so it comes from configuration only."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    url: str = Field(min_length=1)
    name: str = Field(min_length=1)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip()
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"not an http(s) URL: {value!r}")
        return value


def load_feed_list(path: Path) -> list[FeedSpec]:
    """Read YAML or OPML (decided by content, not extension); duplicates are dropped."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read the feed list {path}: {exc}") from exc
    if text.lstrip().startswith("<"):
        raw = _opml_feeds(text, path)
    else:
        raw = _yaml_feeds(text, path)
    feeds: list[FeedSpec] = []
    seen: set[str] = set()
    names: set[str] = set()
    for number, item in enumerate(raw, start=1):
        item = dict(item)
        # The name is a metrics label and appears in logs: never the credentials of the URL.
        item.setdefault("name", redact_url(str(item.get("url") or "")) or None)
        try:
            spec = FeedSpec.model_validate(item)
        except ValidationError as exc:
            raise ConfigurationError(f"{path}: feed #{number} is invalid: {exc}") from exc
        if spec.url in seen:
            logger.warning("%s: feed %s is listed twice; polling it once", path, spec.url)
            continue
        seen.add(spec.url)
        if spec.name in names:
            # The name is the metrics label: two feeds must not share one time series.
            unique = f"{spec.name} ({number})"
            logger.warning(
                "%s: feed name %r is used twice; calling %s %r", path, spec.name, spec.url, unique
            )
            spec = spec.model_copy(update={"name": unique})
        names.add(spec.name)
        feeds.append(spec)
    if not feeds:
        raise ConfigurationError(f"{path}: the feed list is empty")
    return feeds


def _yaml_feeds(text: str, path: Path) -> list[dict[str, Any]]:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{path}: not valid YAML: {exc}") from exc
    items = document.get("feeds") if isinstance(document, dict) else None
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise ConfigurationError(f"{path}: expected 'feeds:' followed by a list of {{url, name}}")
    return items


def _opml_feeds(text: str, path: Path) -> list[dict[str, Any]]:
    """Every ``<outline xmlUrl=…>`` at any depth (readers nest them in folders)."""
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as exc:
        raise ConfigurationError(f"{path}: not valid OPML: {exc}") from exc
    feeds = []
    for outline in root.iter("outline"):
        url = outline.get("xmlUrl") or outline.get("xmlurl")
        if url:
            name = outline.get("title") or outline.get("text") or redact_url(url)
            feeds.append({"url": url, "name": name})
    return feeds
