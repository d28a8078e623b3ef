"""The real tool-tuned reference model (Qwen2.5-Coder-0.5B-Instruct), end to end with default settings.

Opt-in by presence: `make models` puts the GGUF in the cache; without it every test here is skipped
with that command as the reason (a fresh clone never fails on it). What is checked is what a new
user saw go wrong: the model's untagged JSON call must become a call (never the final answer), a
question that needs no tool must get an answer, and the GGUF must load in seconds (the llama.cpp
engine when llama-cpp-python is installed, else the torch engine from its cached conversion).
"""

from __future__ import annotations

import time

import pytest

from agentkit import Agent, MaxStepsExceeded, tool
from agentkit.tools import calculator

pytestmark = pytest.mark.slow


@tool
def get_weather(city: str) -> str:
    """Current weather in a city.

    Args:
        city: the city's name, e.g. "Paris".
    """
    return {"oslo": "-3°C, snow", "lima": "19°C, cloudy"}.get(city.lower(), "no data")


def _reference_engine(name: str):
    """The reference model `name` loaded with default settings (skips with `make models` when absent)."""
    from agentkit.engine import LocalEngine
    from agentkit.engine.reference_models import reference_model_path
    from agentkit.errors import ModelLoadError

    try:
        path = reference_model_path(name)
    except ModelLoadError as exc:
        pytest.skip(str(exc))
    started = time.perf_counter()
    engine = LocalEngine.from_pretrained(path)
    engine.load_seconds = time.perf_counter() - started
    return engine


@pytest.fixture(scope="module")
def qwen05():
    return _reference_engine("qwen2.5-coder-0.5b")


def _steps(agent: Agent, task: str):
    try:
        return agent.run(task).steps
    except MaxStepsExceeded as exc:  # the 0.5B model sometimes keeps calling; its first steps still count
        return exc.partial.steps


def test_auto_picks_hermes_and_the_gguf_loads_in_seconds(qwen05):
    assert qwen05.tool_call_convention == "hermes"
    assert qwen05.load_seconds < 30  # was 83 s (dequantising every tensor); llama.cpp: ~2 s, torch from its cache: seconds


def test_a_question_that_needs_a_tool_gets_a_call_never_a_json_answer(qwen05):
    steps = _steps(Agent(qwen05, tools=[calculator, get_weather], max_steps=2), "What is 17 * 23?")
    first = steps[0]
    assert not first.is_final, f"the call was taken as the answer: {first.raw_output!r}"
    assert [c.name for c in first.calls] == ["calculator"]
    assert first.observations[0].content == "391"


def test_a_question_about_two_cities_calls_the_weather_tool(qwen05):
    steps = _steps(Agent(qwen05, tools=[calculator, get_weather], max_steps=3), "What's the weather in Oslo and in Lima?")
    cities = {c.arguments["city"] for s in steps for c in s.calls if c.name == "get_weather"}
    assert "Oslo" in cities and not steps[0].is_final


def test_a_question_that_needs_no_tool_gets_an_answer(qwen05):
    result = Agent(qwen05, tools=[calculator, get_weather], max_steps=2).run("Who wrote Hamlet?")
    assert result.steps[0].is_final and not result.steps[0].calls
    assert "Shakespeare" in result.output


@pytest.fixture(scope="module")
def qwen15():
    return _reference_engine("qwen2.5-coder-1.5b")


def test_the_15b_judges_a_call_no_tool_should_make_unfit_and_a_needed_call_fit(qwen15):
    """`agentkit.checks.JudgedCalls`: the calls below are the ones the 1.5B itself wrote for these tasks (benchmarks/RESULTS.md)."""
    import asyncio

    from agentkit.checks.judging import unfit_calls
    from agentkit.registry import ToolRegistry
    from agentkit.steps import ParsedStep
    from agentkit.types import ToolCall

    @tool
    def weekday(day: str) -> str:
        """The day of the week of a date (YYYY-MM-DD)."""
        return "Saturday"

    registry = ToolRegistry([calculator, weekday])

    def unfit(task: str, name: str, arguments: dict) -> bool:
        step = ParsedStep(thought=None, calls=[ToolCall(id="1", name=name, arguments=arguments)])
        return bool(asyncio.run(unfit_calls(qwen15, step, registry, task)))

    assert unfit("What is the capital of France?", "weekday", {"day": "2023-04-15"})
    assert not unfit("What is 17 * 23?", "calculator", {"expression": "17 * 23"})
    assert not unfit("Which day of the week is 2026-12-25?", "weekday", {"day": "2026-12-25"})
