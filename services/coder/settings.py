"""The coder's settings, read once from ``WIREWATCH_CODER_*`` (plus the shared Kafka ones)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings


class CoderSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="WIREWATCH_CODER_", frozen=True, extra="ignore")

    app_id: str = "wirewatch-coder"
    # Faust table store: memory:// (rebuilt from the changelog at start) or rocksdb://.
    store: str = "memory://"
    partitions: int = 4
    # Faust's working directory (table stores, worker state); never the source tree.
    data_dir: Path = Path(tempfile.gettempdir()) / "wirewatch-coder"
    # "diplomatic": the CAMEO roots in data/verbs.yaml scope_roots; "all": every root coded.
    scope: Literal["diplomatic", "all"] = "diplomatic"
    # Coding processes (spaCy); 0 = one per CPU core.
    workers: int = 0
    # Articles a coding process takes at once when they are waiting (parsed together, which
    # costs less per article); it never waits for more to arrive.
    batch_size: int = Field(default=4, ge=1, le=64)
