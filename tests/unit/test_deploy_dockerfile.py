"""The Dockerfile read as data (no Docker engine here): slim base, non-root, the wirewatch entry
point, and only files that exist and that .dockerignore lets through."""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def instructions() -> list[tuple[str, str]]:
    text = (REPO / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM")
    return steps[last_from:]


def ignored(path: str) -> bool:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return any(fnmatch.fnmatch(path, p) or path.split("/")[0] == p for p in patterns)


def test_every_stage_builds_on_python_311_slim() -> None:
    bases = [rest.split()[0] for keyword, rest in instructions() if keyword == "FROM"]
    assert bases and all(re.fullmatch(r"python:3\.11-slim(-\w+)?", base) for base in bases)


def test_final_stage_runs_as_a_non_root_user_with_the_wirewatch_entry_point() -> None:
    stage = final_stage()
    users = [rest for keyword, rest in stage if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in {"0", "root"}
    [entrypoint] = [rest for keyword, rest in stage if keyword == "ENTRYPOINT"]
    assert json.loads(entrypoint) == ["wirewatch"]
    env = " ".join(rest for keyword, rest in stage if keyword == "ENV")
    for stage_name in ("POLLER", "EXTRACTOR", "DEDUP", "CODER"):
        assert f"WIREWATCH_{stage_name}_METRICS_HOST=0.0.0.0" in env
        assert f"WIREWATCH_{stage_name}_METRICS_PORT=9100" in env
    assert "WIREWATCH_SCHEMAS_DIR=/opt/wirewatch/schemas" in env


def test_copied_sources_exist_and_are_not_ignored() -> None:
    copied = []
    for keyword, rest in instructions():
        if keyword == "COPY" and not rest.startswith("--from"):
            copied.extend(rest.split()[:-1])
    assert {"pyproject.toml", "README.md", "services/", "schemas/"} <= set(copied)
    for source in copied:
        assert (REPO / source).exists(), source
        assert not ignored(source.rstrip("/")), source
    assert ignored(".venv") and ignored(".git") and ignored("tests")
