"""Where the read-only evaluation data (`shared/eval/`) lives, for benchmarks and tests."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """``$WIREWATCH_SHARED_DIR``, else the first ``shared/`` beside the repository or above it."""
    configured = os.environ.get("WIREWATCH_SHARED_DIR")
    if configured:
        return Path(configured)
    for parent in REPO_ROOT.parents:
        candidate = parent / "shared"
        if (candidate / "eval").is_dir():
            return candidate
    return REPO_ROOT.parent / "shared"


def eval_dir() -> Path:
    return shared_dir() / "eval"
