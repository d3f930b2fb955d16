"""Tools run against the real embedded broker with a topic that does not exist."""

from __future__ import annotations

import os
import subprocess
import sys

from services.common.settings import KafkaSettings


def test_tail_of_a_missing_topic_says_so_without_a_traceback(
    kafka_settings: KafkaSettings, unique_topic: str
) -> None:
    result = subprocess.run(  # noqa: S603 - our own entry point
        [sys.executable, "-m", "wirewatch_tools.cli", "tail", unique_topic, "--max", "1"],
        capture_output=True,
        text=True,
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers},
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr == f"no such topic: {unique_topic}\n"
