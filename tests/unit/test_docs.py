"""The docs cannot drift from the code: every command, setting and metric the code defines is
named in ``docs/``, and every relative link of the README and the docs resolves."""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from prometheus_client import REGISTRY, CollectorRegistry
from pydantic_settings import BaseSettings

import services
from services import SERVICE_NAMES
from wirewatch_tools.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
CODE_PACKAGES = [services]
# An environment variable's name as the code spells it: whole, not a prefix ending in "_".
ENV_NAME = re.compile(r"(?:WIREWATCH|KAFKA)_[A-Z0-9_]*[A-Z0-9]")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def docs_text() -> str:
    return "\n".join(path.read_text(encoding="utf-8") for path in sorted(DOCS.rglob("*.md")))


def code_modules() -> Iterator[ModuleType]:
    for package in CODE_PACKAGES:
        yield package
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{package.__name__}."):
            yield importlib.import_module(info.name)


def command_paths() -> dict[str, list[str]]:
    """Every subcommand of ``wirewatch`` (``"replay copy"``…) with its long options."""
    found: dict[str, list[str]] = {}

    def walk(parser: argparse.ArgumentParser, path: list[str]) -> None:
        for action in parser._actions:
            if not isinstance(action, argparse._SubParsersAction):
                continue
            for name, sub in action.choices.items():
                options = [
                    option
                    for sub_action in sub._actions
                    for option in sub_action.option_strings
                    if option.startswith("--") and option != "--help"
                ]
                found[" ".join([*path, name])] = options
                walk(sub, [*path, name])

    walk(build_parser(), [])
    return found


def settings_classes() -> set[type[BaseSettings]]:
    classes: set[type[BaseSettings]] = set()
    for module in code_modules():
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, BaseSettings) and value.__module__ == module.__name__:
                classes.add(value)
    return classes


def settings_env_names() -> set[str]:
    """The variables of every settings class: its prefix and each field that is not itself a
    settings object (those are read under their own prefix). A base class that only others
    extend (``ServiceSettings``) is read under its subclasses' prefixes."""
    names = set()
    classes = settings_classes()
    for cls in classes:
        if any(other is not cls and issubclass(other, cls) for other in classes):
            continue
        prefix = str(cls.model_config.get("env_prefix", ""))
        for field_name, field in cls.model_fields.items():
            annotation = field.annotation
            if inspect.isclass(annotation) and issubclass(annotation, BaseSettings):
                continue
            names.add((prefix + (field.alias or field_name)).upper())
    return names


def literal_env_names() -> set[str]:
    """Variables the code reads by name (``os.environ.get("WIREWATCH_…")``) rather than through
    a settings class."""
    names = set()
    for package in CODE_PACKAGES:
        for path in Path(package.__path__[0]).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    if ENV_NAME.fullmatch(node.value):
                        names.add(node.value)
    return names


def metric_names() -> set[str]:
    """Every ``wirewatch_*`` metric: those created at import, and those each ``…Metrics`` class
    creates (once per stage for a class that takes the service's name)."""
    registries = [REGISTRY]
    for module in list(code_modules()):
        classes: list[tuple[str, Any]] = inspect.getmembers(module, inspect.isclass)
        for _, cls in classes:
            if not cls.__name__.endswith("Metrics") or cls.__module__ != module.__name__:
                continue
            parameters = inspect.signature(cls).parameters
            assert "registry" in parameters, f"{cls.__qualname__} takes no registry"
            services_named = SERVICE_NAMES if "service" in parameters else (None,)
            for service in services_named:
                registry = CollectorRegistry()
                if service is None:
                    cls(registry=registry)
                else:
                    cls(service, registry=registry)
                registries.append(registry)
    names = set()
    for registry in registries:
        for family in registry.collect():
            name = family.name + ("_total" if family.type == "counter" else "")
            if name.startswith("wirewatch_"):
                names.add(name)
    return names


def test_every_command_and_its_options_are_in_the_docs() -> None:
    text = docs_text()
    commands = command_paths()
    assert {"run", "poller", "extractor", "dedup", "coder", "replay copy"} <= commands.keys()
    missing = [f"wirewatch {path}" for path in commands if f"wirewatch {path}" not in text]
    assert not missing, f"commands not named in docs/: {missing}"
    missing_options = []
    for path, options in commands.items():
        missing_options += [
            f"wirewatch {path} {o}" for o in options if not re.search(rf"{re.escape(o)}\b", text)
        ]
    assert not missing_options, f"options not named in docs/: {missing_options}"


def test_every_setting_is_in_the_docs() -> None:
    text = docs_text()
    names = settings_env_names() | literal_env_names()
    assert {"KAFKA_BOOTSTRAP_SERVERS", "WIREWATCH_POLLER_FEEDS", "WIREWATCH_SCHEMAS_DIR"} <= names
    missing = sorted(name for name in names if not re.search(rf"\b{name}\b", text))
    assert not missing, f"settings not named in docs/: {missing}"


def test_every_metric_is_in_the_docs() -> None:
    text = docs_text()
    names = metric_names()
    assert {"wirewatch_poller_polls_total", "wirewatch_coder_events_total"} <= names
    assert {f"wirewatch_{service}_dead_letters_total" for service in SERVICE_NAMES} <= names
    # The shared metrics are documented once as wirewatch_<service>_…
    missing = sorted(
        name
        for name in names
        if name not in text
        and re.sub(rf"^wirewatch_({'|'.join(SERVICE_NAMES)})_", "wirewatch_<service>_", name)
        not in text
    )
    assert not missing, f"metrics not named in docs/: {missing}"


def heading_anchors(markdown: str) -> set[str]:
    """GitHub's anchors for a page's headings: lower case, punctuation dropped, spaces to '-'."""
    anchors = set()
    in_code = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if in_code or not line.startswith("#"):
            continue
        title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", line.lstrip("#").strip().lower())
        anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted(DOCS.rglob("*.md"))]


@pytest.mark.parametrize("page", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue
        path_part, _, anchor = target.partition("#")
        linked = (page.parent / path_part).resolve() if path_part else page
        if not linked.exists():
            broken.append(target)
        elif anchor and linked.suffix == ".md":
            if anchor not in heading_anchors(linked.read_text(encoding="utf-8")):
                broken.append(target)
    assert not broken, f"{page.relative_to(ROOT)}: links that resolve to nothing: {broken}"


def test_readme_stays_short() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines; the rest belongs in docs/"
