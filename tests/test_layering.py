"""The house rules of the source tree, checked on the code itself (parsed, not imported).

- The engine is a layer below the agent: `engine/` never imports the agent's step or format modules.
- A module's underscore names are its own: no module imports `_name` from another.
- Imports form no cycle, at module level or inside functions (a cycle makes import order matter and
  hides a layering mistake).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Source folder -> the package it installs as (pyproject's package-dir).
PACKAGES = {"agentkit": "agentkit", "engine": "agentkit.engine", "tools": "agentkit.tools"}
# Scripts run as their own process (never imported as part of the package).
SCRIPTS = {"agentkit.tools._sandbox_child"}


def _modules() -> dict[str, Path]:
    found = {}
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if "__pycache__" in parts or (folder == "agentkit" and parts[0] in {"engine", "tools", "prompts"}):
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join((package, *parts))
            if name not in SCRIPTS:
                found[name] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> Iterator[tuple[str, list[str]]]:
    """(imported module, names taken from it) for each import statement of a module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield target, [alias.name for alias in node.names]


def test_modules_are_found():
    assert {"agentkit.agent", "agentkit.engine.grammar", "agentkit.tools.files"} <= set(MODULES)


def test_the_engine_does_not_import_the_agent_layer():
    forbidden = ("agentkit.steps", "agentkit.formats", "agentkit.agent")
    offenders = [
        f"{name} imports {target}"
        for name, path in MODULES.items()
        if name.startswith(("agentkit.engine", "agentkit.constraints"))
        for target, _ in _imports(name, path)
        if target.startswith(forbidden)
    ]
    assert offenders == []


def test_no_module_imports_a_private_name_of_another():
    offenders = [
        f"{name} imports {imported} from {target}"
        for name, path in MODULES.items()
        for target, names in _imports(name, path)
        if target != "__future__"
        for imported in names
        if imported.startswith("_") and not imported.startswith("__")
    ]
    assert offenders == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_imports_form_no_cycle():
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for name, path in MODULES.items():
        for target, names in _imports(name, path):
            # `from package import submodule` depends on the submodule; anything else on the module named.
            candidates = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES] or [target]
            graph[name].update(c for c in candidates if c in MODULES and c != name and c != "agentkit")
    assert _cycles(graph) == []


@pytest.mark.parametrize("rule", ["engine", "private", "cycle"])
def test_the_checks_catch_what_they_are_for(rule, tmp_path):
    """Each rule fails on a module that breaks it (a rule that cannot fail proves nothing)."""
    if rule == "cycle":
        assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
        return
    source = "from agentkit.steps import StepLimits\n" if rule == "engine" else "from agentkit.tool import _helper\n"
    path = tmp_path / "bad.py"
    path.write_text(source)
    imports = list(_imports("agentkit.engine.bad", path))
    assert imports == [("agentkit.steps", ["StepLimits"])] if rule == "engine" else [("agentkit.tool", ["_helper"])]


def test_every_test_folder_is_a_package():
    """Test modules import as tests.<folder>.<name>, so two folders may hold test files of the same name."""
    folders = [p for p in (ROOT / "tests").rglob("*") if p.is_dir() and p.name != "__pycache__" and any(p.glob("test_*.py"))]
    assert [str(p) for p in folders if not (p / "__init__.py").is_file()] == []
