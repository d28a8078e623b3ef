"""Every docstring example in the public modules runs and prints what it claims."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "agentkit",
    "agentkit._docstring",
    "agentkit.agent",
    "agentkit.prompting",
    "agentkit.registry",
    "agentkit.steps",
    "agentkit.testing",
    "agentkit.tool",
    "agentkit.types",
    "agentkit.prompts",
    "agentkit.tools",
    "agentkit.tools.calculator",
    "agentkit.engine",
    "agentkit.engine.kv_cache",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
    if name != "agentkit.engine":  # its examples need a model and are marked +SKIP
        assert result.attempted > 0, f"{name} has no docstring example"
