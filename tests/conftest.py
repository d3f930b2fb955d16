"""Fixtures shared by every test: the real embedded broker, one per session, started on demand."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import evaldata
from services.common.broker import EmbeddedBroker
from services.common.settings import KafkaSettings

EVAL_DIR = evaldata.eval_dir()


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap address of a Tansu broker (memory storage) for the whole session.

    With KAFKA_BOOTSTRAP_SERVERS set, that cluster is used instead and nothing is started.
    """
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        yield configured
        return
    log_path = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(storage="memory", log_path=log_path) as embedded:
        yield embedded.bootstrap_servers


@pytest.fixture(scope="session")
def kafka_settings(broker: str) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=broker)


@pytest.fixture
def unique_topic() -> str:
    return f"it-{uuid.uuid4().hex}"


@pytest.fixture(scope="session")
def eval_dir() -> Path:
    if not EVAL_DIR.is_dir():
        pytest.fail(f"evaluation data not found at {EVAL_DIR} (set WIREWATCH_SHARED_DIR)")
    return EVAL_DIR
