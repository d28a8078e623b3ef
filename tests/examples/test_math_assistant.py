"""End to end on the embedded SmolLM2-135M: the README demo must really work."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "math_assistant.py"


def _load_example():
    spec = importlib.util.spec_from_file_location("math_assistant", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_math_assistant_multiplies_with_the_calculator(smollm2):
    agent = _load_example().build_agent(smollm2)
    result = agent.run("What is 17 * 23?")
    calls = [call for step in result.steps for call in step.calls]
    assert [c.name for c in calls] == ["calculator"]
    assert calls[0].arguments["expression"].replace(" ", "") == "17*23"
    assert result.steps[0].observations[0].content == "391"
    assert "391" in str(result.output)
    assert result.usage.model_calls == len(result.steps) == 2


@pytest.mark.slow
def test_math_assistant_answers_a_question_in_another_language(smollm2):
    agent = _load_example().build_agent(smollm2)
    result = agent.run("Quanto fa 250 diviso 5?")
    assert [c.arguments for s in result.steps for c in s.calls] == [{"expression": "250 / 5"}]
    assert "50" in str(result.output)


@pytest.mark.slow
def test_every_step_of_the_embedded_model_is_valid(smollm2):
    agent = _load_example().build_agent(smollm2)
    for question in ["What is 45 + 78?", "How much is 1200 / 16?"]:
        for step in agent.run(question).steps:
            assert step.rejected_outputs == []
            assert all(not o.is_error for o in step.observations)
