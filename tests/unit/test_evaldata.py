"""Where benchmarks and tests find the evaluation data, from wherever the repository is cloned."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from bench import evaldata


def git(*args: str | Path) -> None:
    subprocess.run(
        ["git", "-c", "user.name=test", "-c", "user.email=test@example.com", *map(str, args)],
        check=True,
        capture_output=True,
    )


def shared_dir_seen_from(repository: Path) -> Path:
    env = {k: v for k, v in os.environ.items() if k != "WIREWATCH_SHARED_DIR"}
    found = subprocess.run(
        [sys.executable, "-c", "from bench.evaldata import shared_dir; print(shared_dir())"],
        cwd=repository,
        env={**env, "PYTHONPATH": str(repository)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return Path(found)


def test_a_clone_of_a_clone_elsewhere_finds_the_data_beside_the_first_checkout(
    tmp_path: Path,
) -> None:
    (tmp_path / "work" / "shared" / "eval").mkdir(parents=True)
    checkout = tmp_path / "work" / "main"
    (checkout / "bench").mkdir(parents=True)
    shutil.copy(Path(evaldata.__file__), checkout / "bench" / "evaldata.py")
    (checkout / "bench" / "__init__.py").touch()
    git("init", "-q", checkout)
    git("-C", checkout, "add", ".")
    git("-C", checkout, "commit", "-q", "-m", "evaldata")
    clone = tmp_path / "elsewhere" / "clone"
    git("clone", "-q", checkout, clone)
    again = tmp_path / "further" / "clone"
    git("clone", "-q", clone, again)

    expected = (tmp_path / "work" / "shared").resolve()
    assert shared_dir_seen_from(checkout).resolve() == expected
    assert shared_dir_seen_from(clone).resolve() == expected
    assert shared_dir_seen_from(again).resolve() == expected


def test_a_tree_without_data_nearby_falls_back_beside_itself(tmp_path: Path) -> None:
    lone = tmp_path / "lone"
    (lone / "bench").mkdir(parents=True)
    shutil.copy(Path(evaldata.__file__), lone / "bench" / "evaldata.py")
    (lone / "bench" / "__init__.py").touch()
    assert shared_dir_seen_from(lone).resolve() == (tmp_path / "shared").resolve()
