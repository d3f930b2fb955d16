"""The dedup service's settings, read once from ``WIREWATCH_DEDUP_*`` (plus ``KAFKA_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings


class DedupSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="WIREWATCH_DEDUP_", frozen=True, extra="ignore")

    app_id: str = Field(
        default="wirewatch-dedup",
        description="Faust app id: names the consumer group, the window topic and the changelog",
    )
    window_hours: float = Field(default=72.0, gt=0, description="how long an article is kept")
    store: str = Field(default="memory://", description="Faust table store (memory:// rocksdb://)")
    posting_limit: int = Field(default=48, ge=1, description="articles kept per index key")
    candidate_limit: int = Field(default=24, ge=1, description="articles compared per lookup")
