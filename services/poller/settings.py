"""The poller's settings, read from ``WIREWATCH_POLLER_*`` once at start-up."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings


class PollerSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="WIREWATCH_POLLER_", frozen=True, extra="ignore")

    feeds: Path = Field(description="Feed list: YAML (feeds: [{url, name}]) or OPML")
    min_interval_seconds: float = Field(default=300.0, gt=0)
    max_interval_seconds: float = Field(default=24 * 3600.0, gt=0)
    state_topic: str = "poller.state"
    seen_entries_per_feed: int = Field(default=2000, ge=1)
    report_failures_after: int = Field(default=5, ge=1)
    stop_grace_seconds: float = 10.0
    # How long a poller's lease on the state topic lasts unrenewed: a killed poller's standby
    # (or its restart) waits this long; a gracefully stopped one hands over at once.
    lease_seconds: float = Field(default=60.0, gt=0)
