"""The layout holds: stages import only ``services.common`` (never each other), nothing in
``services`` imports the tools, and no module imports itself back through others.

Imports are read from the source, those inside functions and those made with
``importlib.import_module``/``find_spec`` of a constant name included, since a cycle hidden in
a function is still a cycle (``core/pipeline.py`` → ``services.cli`` was one). A name built at
run time (an f-string) cannot be followed; the entry point that builds them
(``wirewatch_tools/cli.py``) is imported by nothing.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from services import SERVICE_NAMES

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("services", "wirewatch_tools")
DYNAMIC_IMPORTS = {"import_module", "find_spec"}


def module_names() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def imported_names(module: str, path: Path) -> Iterator[str]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    yield from names_in_source(path.read_text(encoding="utf-8"), package)


def names_in_source(source: str, package: str) -> Iterator[str]:
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            # ``from package import module`` imports the module.
            yield from (f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0]
            if name in DYNAMIC_IMPORTS and isinstance(first, ast.Constant):
                yield str(first.value)


def import_graph() -> dict[str, set[str]]:
    modules = module_names()
    return {
        module: {name for name in imported_names(module, path) if name in modules} - {module}
        for module, path in modules.items()
    }


def stage_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "services" and len(parts) > 1 and parts[1] in SERVICE_NAMES:
        return parts[1]
    return None


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_imports_of_every_kind() -> None:
    graph = import_graph()
    assert "services.common.kafka" in graph["services.extractor.app"]  # from … import …
    assert "services.coder.recode" in graph["wirewatch_tools.replay.cli"]  # inside a function
    assert "services" in graph["wirewatch_tools.local.pipeline"]  # the package itself
    source = "import importlib\nfrom . import sibling\nimportlib.import_module('x.y')\n"
    assert set(names_in_source(source, "pkg.sub")) >= {"pkg.sub", "pkg.sub.sibling", "x.y"}


def test_no_stage_imports_another() -> None:
    crossing = [
        f"{module} -> {target}"
        for module, targets in import_graph().items()
        for target in targets
        if stage_of(module) and stage_of(target) and stage_of(module) != stage_of(target)
    ]
    assert not crossing, f"stages import each other: {crossing}"


def test_nothing_in_services_imports_the_tools() -> None:
    upward = [
        f"{module} -> {target}"
        for module, targets in import_graph().items()
        for target in targets
        if module.split(".")[0] == "services" and target.split(".")[0] == "wirewatch_tools"
    ]
    assert not upward, f"services import the tools: {upward}"


def test_no_import_cycle() -> None:
    assert cycles(import_graph()) == []


def test_a_cycle_and_a_crossing_would_be_found() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert stage_of("services.poller.app") == "poller" and stage_of("services.common.x") is None
