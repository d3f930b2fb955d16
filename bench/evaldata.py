"""Where the read-only evaluation data (`shared/eval/`) lives, for benchmarks and tests."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CLONE_HOPS = 4  # a clone of a clone of the checkout beside ``shared/`` still finds it


def _cloned_from(repository: Path) -> Path | None:
    """The local repository ``repository`` was cloned from, if it was (``git clone . /tmp/x``)."""
    try:
        url = subprocess.run(
            ["git", "-C", str(repository), "config", "--get", "remote.origin.url"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):  # no git, or it hung: look no further
        return None
    path = url.removeprefix("file://")
    if not path or "://" in path or not Path(path).is_dir():
        return None  # cloned from a server, or from a checkout that is gone
    return Path(path).resolve()


def _shared_above(root: Path) -> Path | None:
    for parent in root.parents:
        if (parent / "shared" / "eval").is_dir():
            return parent / "shared"
    return None


def shared_dir() -> Path:
    """``$WIREWATCH_SHARED_DIR``, else the first ``shared/`` beside the repository or above it,
    else the same beside the local repository it was cloned from, and so on (a clone in a
    temporary directory still finds the data of the checkout it came from)."""
    configured = os.environ.get("WIREWATCH_SHARED_DIR")
    if configured:
        return Path(configured)
    repository: Path | None = REPO_ROOT
    for _ in range(CLONE_HOPS):
        if repository is None:
            break
        found = _shared_above(repository)
        if found is not None:
            return found
        repository = _cloned_from(repository)
    return REPO_ROOT.parent / "shared"


def eval_dir() -> Path:
    return shared_dir() / "eval"
