"""Fixtures shared by every test: the real embedded broker, one per session, started on demand."""

from __future__ import annotations

import ast
import gc
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from bench import evaldata
from services.common.settings import KafkaSettings
from wirewatch_tools.broker import EmbeddedBroker

EVAL_DIR = evaldata.eval_dir()

# The property tests draw new inputs on every local run (they have found real bugs that way);
# CI (`.ci/run` sets HYPOTHESIS_PROFILE=ci) draws the same ones every time, so whether a commit
# lands depends on the commit and not on the luck of the draw.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

# CPython 3.11 up to 3.11.7 (this machine's) keeps the AST constructor's recursion counter in
# interpreter-wide state, so a parse that starts while another is being built fails with
# "SystemError: AST constructor recursion depth mismatch" (python/cpython#106905): from another
# thread, or from Python code the garbage collector runs in the middle of the first. pytest
# parses whenever it rewrites a module imported late (hypothesis imports part of itself during
# a test), and that failed `test_any_bytes_parse_to_entries_or_a_reason` in a fresh clone with
# only the main thread alive. So the test process parses in turns, without collecting meanwhile.
_ast_parse = ast.parse
_ast_parse_lock = threading.RLock()


def _ast_parse_in_turn(*args: Any, **kwargs: Any) -> Any:
    with _ast_parse_lock:
        collecting = gc.isenabled()
        gc.disable()
        try:
            return _ast_parse(*args, **kwargs)
        finally:
            if collecting:
                gc.enable()


ast.parse = _ast_parse_in_turn


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
