"""The router example on the embedded model: delegation to a specialist agent used as a tool."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from agentkit import ToolCall

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(name: str):
    sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # pydantic resolves the module's annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_the_router_delegates_arithmetic_to_the_math_agent(smollm2):
    result = load("router").build_agent(smollm2).run("What is 45 * 12?")
    first = result.steps[0]
    assert [c.name for c in first.calls] == ["arithmetic_expert"]
    assert first.calls[0].arguments == {"task": "What is 45 * 12?"}
    assert first.observations[0].content == "540"  # the math agent's own answer, from its calculator
    assert result.output == "540"


@pytest.mark.slow
def test_the_time_specialist_answers_what_it_is_given(smollm2):
    router = load("router").build_agent(smollm2)
    task = "It is 2026-05-04T15:00 in Europe/London. What time is it in Asia/Tokyo?"
    observation = router.registry.run(ToolCall(id="1", name="timezone_expert", arguments={"task": task}))
    assert observation.content == "2026-05-04T23:00:00+09:00"
