"""One logging set-up for every service: JSON lines off a terminal, readable text on one."""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any

from services.common.redact import redact_text

_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message"}


class TextFormatter(logging.Formatter):
    """Readable lines for a terminal, URL credentials masked."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object a line; URL credentials anywhere in it (message, fields, traceback)
    are masked, whoever logged them (our code, aiohttp's errors, the client libraries)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "severity": record.levelname,
            "name": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value if isinstance(value, str | int | float | bool) else str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redact_text(json.dumps(entry, ensure_ascii=False))


def configure_logging(level: str = "INFO", *, json_lines: bool | None = None) -> None:
    """Log to stderr; ``json_lines`` defaults to "stderr is not a terminal"."""
    use_json = not sys.stderr.isatty() if json_lines is None else json_lines
    handler = logging.StreamHandler(sys.stderr)
    if use_json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            TextFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Client libraries are chatty at INFO about every rebalance and connection; their rebalance
    # and recovery messages are what a stalled consumer needs, so they can be asked for.
    library_level = logging.getLevelName(
        os.environ.get("WIREWATCH_LIBRARY_LOG_LEVEL", "WARNING").upper()
    )
    if not isinstance(library_level, int):
        library_level = logging.WARNING
    for noisy in ("aiokafka", "kafka", "faust", "mode", "httpx", "trafilatura", "htmldate"):
        logging.getLogger(noisy).setLevel(max(library_level, root.level))
