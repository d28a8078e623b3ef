"""A call whose numbers the model invented, with nothing taken from the conversation, is dropped (`agentkit.checks.GroundedCalls`)."""

from __future__ import annotations

from typing import Literal

import pytest

from agentkit import Agent, tool
from agentkit.checks import DEFAULT_STEP_CHECKS, GroundedCalls
from agentkit.checks.grounding import is_grounded
from agentkit.testing import ScriptedBackend
from agentkit.trace import read_trace
from agentkit.types import ToolCall


def forecast_tool(made: list[dict]):
    @tool
    def get_forecast(city: str, days: int) -> str:
        """The weather forecast for a city."""
        made.append({"city": city, "days": days})
        return f"sun in {city} for {days} days"

    return get_forecast


INVENTED = {"calls": [{"name": "get_forecast", "arguments": {"city": "Oslo", "days": 3}}]}


def test_an_invented_call_is_dropped_and_the_model_answers_instead(tmp_path):
    made: list[dict] = []
    backend = ScriptedBackend([INVENTED, {"final_answer": "Lima is the capital of Peru."}])
    agent = Agent(backend, tools=[forecast_tool(made)], trace=tmp_path / "run.jsonl")
    result = agent.run("What is the capital of Peru?")
    assert result.output == "Lima is the capital of Peru."
    assert made == []  # the guessed call never ran
    (step,) = result.steps
    assert [(d.call.arguments, d.check) for d in step.discarded] == [({"city": "Oslo", "days": 3}, "grounded_calls")]
    # The model is told which call was not run, and why (the check's reason).
    assert backend.requests[1].messages[-1].content == (
        "[get_forecast was not run: its values are not in the conversation. Answer the user without it.]"
    )
    # The second request could only be answered: its schema has no way to call a tool.
    assert "calls" in str(backend.requests[0].constraint) and "calls" not in str(backend.requests[1].constraint)
    assert result.usage.model_calls == 2
    assert "get_forecast" not in result.messages[-1].content  # the history shows the answer, not the guess
    events = read_trace(tmp_path / "run.jsonl")
    dropped = [(e["check"], e["reason"]) for e in events if e["event"] == "calls_dropped"]
    assert dropped == [("grounded_calls", "its values are not in the conversation")]


@pytest.mark.parametrize(
    "task",
    ["What will the weather in Oslo be?", "Give me the 3 day forecast for Bergen."],
    ids=["a word of the task", "a number of the task"],
)
def test_a_call_with_any_value_from_the_task_runs(task):
    made: list[dict] = []
    agent = Agent(ScriptedBackend([INVENTED, {"final_answer": "Sunny."}]), tools=[forecast_tool(made)])
    assert agent.run(task).steps[0].discarded == []
    assert made == [{"city": "Oslo", "days": 3}]


def test_a_number_from_a_tool_result_grounds_the_next_call():
    @tool
    def age_of(name: str) -> str:
        """How old someone is."""
        return f"{name} is 41"

    @tool
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    script = [
        {"calls": [{"name": "age_of", "arguments": {"name": "Ann"}}]},
        {"calls": [{"name": "add", "arguments": {"a": 41, "b": 1}}]},
        {"final_answer": "42"},
    ]
    result = Agent(ScriptedBackend(script), tools=[age_of, add]).run("How old will Ann be next year?")
    assert result.output == "42"
    assert [o.content for o in result.steps[1].observations] == ["42"]


def test_calls_without_numbers_of_their_own_are_never_judged():
    """A composed string (a shell command) is not a guess, and neither is a choice from a fixed list."""
    ran: list[str] = []

    @tool
    def run_command(command: str, level: Literal[1, 2, 3] = 1, verbose: bool = False) -> str:
        """Run a shell command."""
        ran.append(command)
        return "12% used"

    script = [
        {"calls": [{"name": "run_command", "arguments": {"command": "df -h", "level": 2, "verbose": True}}]},
        {"final_answer": "12% of the disk is used."},
    ]
    Agent(ScriptedBackend(script), tools=[run_command]).run("Check the disk usage.")
    assert ran == ["df -h"]


def test_turned_off_the_invented_call_runs():
    made: list[dict] = []
    agent = Agent(
        ScriptedBackend([INVENTED, {"final_answer": "Sunny."}]), tools=[forecast_tool(made)],
        step_checks=[c for c in DEFAULT_STEP_CHECKS if not isinstance(c, GroundedCalls)],
    )
    agent.run("What is the capital of Peru?")
    assert made == [{"city": "Oslo", "days": 3}]


def test_a_step_is_never_lost_when_the_answer_asked_for_is_not_valid():
    made: list[dict] = []
    agent = Agent(ScriptedBackend([INVENTED, "not a step", {"final_answer": "Sunny."}]), tools=[forecast_tool(made)])
    result = agent.run("What is the capital of Peru?")
    assert made == [{"city": "Oslo", "days": 3}]  # the original step ran as it was
    assert result.steps[0].discarded == []


def test_only_the_invented_calls_of_a_step_are_dropped():
    made: list[dict] = []
    script = [
        {"calls": [
            {"name": "get_forecast", "arguments": {"city": "Lima", "days": 2}},
            {"name": "get_forecast", "arguments": {"city": "Oslo", "days": 5}},
        ]},
        {"final_answer": "Sunny."},
    ]
    result = Agent(ScriptedBackend(script), tools=[forecast_tool(made)]).run("Forecast for Lima, 2 days.")
    assert made == [{"city": "Lima", "days": 2}]
    assert [d.call.arguments["city"] for d in result.steps[0].discarded] == ["Oslo"]


@pytest.mark.parametrize(
    ("arguments", "conversation", "grounded"),
    [
        ({"rate": 0.05, "years": 10}, "Invest at 5% a year for ten years.", True),  # a percentage
        ({"amount": 1000000}, "Lend 1,000,000 euros.", True),  # thousands separators
        ({"x": -4}, "Solve 3x^2 - 11x - 4 = 0.", True),  # the sign is the equation's
        ({"city": "東京都", "days": 7}, "東京の天気は？", True),  # a script without spaces
        ({"note": "C", "octave": 5}, "Play the note C.", True),  # one letter, as a word
        ({"weight": 10.0, "height": 5}, "What is the area of a triangle with base 10 and height 5?", True),
        # Units converted by their SI prefix (BFCL simple_python_42: 50 mH and 100 µF as henries and farads).
        ({"inductance": 0.05, "capacitance": 0.0001, "round_off": 2}, "An LC circuit of 100µF and 50mH.", True),
        ({"meters": 2000}, "Walk 2 km north.", True),
        ({"principal": 100, "rate": 10}, "What are the prime factors of 97?", False),
    ],
)
def test_what_counts_as_taken_from_the_conversation(arguments, conversation, grounded):
    call = ToolCall(id="1", name="tool", arguments=arguments)
    assert is_grounded(call, {}, conversation) is grounded
