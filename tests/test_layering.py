"""Module boundaries, read from the source: the engine stays below the agent layer, and no module borrows another's private names."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The installed names of the top-level folders (engine/ is agentkit.engine, ...).
PACKAGES = {"agentkit": "agentkit", "engine": "agentkit.engine", "tools": "agentkit.tools"}
AGENT_LAYER = ("agentkit.steps", "agentkit.formats")


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names imported from it) for every import in `path`, relative imports resolved."""
    package = PACKAGES[path.relative_to(ROOT).parts[0]]
    inner = path.relative_to(ROOT).parts[1:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = ".".join([package, *inner][: len(inner) + 2 - node.level])
                base = f"{parent}.{base}" if base else parent
            found.append((base, [alias.name for alias in node.names]))
    return found


def _sources(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def test_the_engine_imports_nothing_from_the_agent_layer():
    # The engine compiles `agentkit.constraints` and reports a template's tool-call convention; the
    # agent layer (steps, tool formats) builds constraints and maps conventions. Either can change alone.
    engine_side = [*_sources("engine"), ROOT / "agentkit" / "constraints.py"]
    assert len(engine_side) > 10
    offending = [
        f"{path.relative_to(ROOT)}: {module}"
        for path in engine_side
        for module, names in _imports(path)
        for imported in [module, *(f"{module}.{n}" for n in names)]
        if any(imported == layer or imported.startswith(layer + ".") for layer in AGENT_LAYER)
    ]
    assert offending == []


# Imports of private names that other pieces of work are removing (the CLI package split and the agent
# loop's rewrite); nothing may be added here.
KNOWN_PRIVATE_IMPORTS = {
    ("agentkit/_cli_eval.py", "agentkit.cli", "_errors_as_one_line"),
    ("agentkit/_cli_eval.py", "agentkit.cli", "_load_backend"),
    ("agentkit/agent.py", "agentkit._threads", "_iterate_in_thread"),
}


def test_no_module_imports_a_private_name_of_another():
    found = {
        (str(path.relative_to(ROOT)), module, name)
        for path in _sources("agentkit", "engine", "tools")
        for module, names in _imports(path)
        for name in names
        if name.startswith("_") and not name.startswith("__")
    }
    assert found - KNOWN_PRIVATE_IMPORTS == set()
