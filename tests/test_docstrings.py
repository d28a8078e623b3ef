"""Every docstring example in the public modules runs and prints what it claims."""

from __future__ import annotations

import doctest
import importlib

import pytest


def _modules() -> list[str]:
    """Every module of the installed package, new ones included automatically."""
    import pkgutil


    names = ["agentkit"]
    # agentkit.engine, .tools and .prompts live in their own top-level folders: walk each one.
    for package in ("agentkit", "agentkit.engine", "agentkit.tools", "agentkit.prompts"):
        module = importlib.import_module(package)
        names += [package] + [info.name for info in pkgutil.walk_packages(module.__path__, package + ".")]
    return sorted(set(names))


MODULES = _modules()
# Modules whose examples all need a model, files or a network, and so are marked +SKIP.
ONLY_SKIPPED_EXAMPLES = {"agentkit.engine"}  # engine: and its modules, except those listed here
ENGINE_MODULES_WITH_EXAMPLES = {"agentkit.engine.kv_cache"}
# Files of the package that are scripts run in a child process, never imported.
SCRIPTS = {"agentkit.tools._sandbox_child", "agentkit.cli.__main__"}


@pytest.mark.parametrize("name", [m for m in MODULES if m not in SCRIPTS])
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
    skipped_only = name in ONLY_SKIPPED_EXAMPLES or (name.startswith("agentkit.engine.") and name not in ENGINE_MODULES_WITH_EXAMPLES)
    if not skipped_only:
        assert result.attempted > 0, f"{name} has no docstring example"
