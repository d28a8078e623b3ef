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


@tool
def find_employee(name: str) -> str:
    """Look up an employee by first name: their department.

    Args:
        name: the employee's first name, e.g. "Ana".
    """
    return {"ben": "Ben: department research"}.get(name.lower(), f"no employee called {name!r}")


def department_tool(made: list[str]):
    @tool
    def department_info(department: str, unit: str = "EUR") -> str:
        """Facts about a department: its yearly budget.

        Args:
            department: the department's name, e.g. "finance".
            unit: the currency, such as EUR or USD.
        """
        made.append(department)
        return f"{department}: budget 340000 {unit}"

    return department_info


def hermes_call(tool_name: str, **arguments) -> str:
    import json

    return f'<tool_call>\n{json.dumps({"name": tool_name, "arguments": arguments})}\n</tool_call>'


@pytest.mark.parametrize(
    ("arguments", "conversation", "grounded"),
    [
        ({"department": "finance"}, "What is the budget of Ben's department?", False),  # the description's example
        ({"department": "finance"}, "What is the budget of the finance department?", True),  # the task says it
        ({"department": "research"}, "What is the budget of Ben's department?", True),  # not an example: composed strings pass
        ({"department": "finance", "unit": "EUR"}, "Budget of Ben's department?", False),
        ({"department": "research", "unit": "EUR"}, "Budget of Ben's department?", True),  # EUR is the default
        ({"department": "sales", "unit": "USD"}, "Budget of the sales department?", True),  # an example beside a value of the task
        ({"department": "sales", "unit": "USD"}, "Budget of Ben's department?", False),  # an example beside an invented value
    ],
)
def test_a_value_copied_from_the_tools_description_example_is_a_guess(arguments, conversation, grounded):
    from agentkit.checks.grounding import description_examples

    tool_ = department_tool([])
    call = ToolCall(id="1", name="department_info", arguments=arguments)
    examples = description_examples(tool_.description, tool_.parameters, tool_.examples)
    assert is_grounded(call, tool_.parameters, conversation, examples=examples) is grounded


def test_an_example_value_is_shown_as_not_run_and_the_model_must_call_again():
    """Qwen2.5-Coder-1.5B wrote department_info("finance") (the docstring's example) before looking up Ben's department."""
    made: list[str] = []
    backend = ScriptedBackend([
        hermes_call("department_info", department="finance"),
        hermes_call("find_employee", name="Ben"),
        hermes_call("department_info", department="research"),
        "The research department's budget is 340000 EUR.",
    ])
    agent = Agent(backend, tools=[find_employee, department_tool(made)], tool_format="hermes")
    result = agent.run("What is the yearly budget of Ben's department?")
    assert result.output == "The research department's budget is 340000 EUR."
    assert made == ["research"]  # the guessed call never ran
    (discarded,) = result.steps[0].discarded
    assert discarded.call_again and discarded.check == "grounded_calls"
    # The model sees its call, and as its result why it did not run, and what to do instead.
    second = backend.requests[1]
    assert "finance" in second.messages[-2].content
    assert second.messages[-1].content == (
        "[department_info was not run: department 'finance' is only the example from its description, not a value "
        "from this conversation. Call department_info again with the real department (look it up with a tool first "
        "if you do not know it).]"
    )
    # That next step must call a tool (a small model otherwise asks the user for the value); the one after is free.
    assert second.constraint != backend.requests[0].constraint
    assert backend.requests[2].constraint == backend.requests[0].constraint


def test_the_same_example_call_written_again_runs():
    """Ana does work in finance: told once that "finance" is only the example, the model insists, and the call runs."""
    made: list[str] = []
    guess = hermes_call("department_info", department="finance")
    backend = ScriptedBackend([guess, guess, "Finance's budget is 340000 EUR."])
    agent = Agent(backend, tools=[find_employee, department_tool(made)], tool_format="hermes")
    result = agent.run("What is the yearly budget of Ana's department?")
    assert made == ["finance"] and result.output == "Finance's budget is 340000 EUR."
    assert [len(s.discarded) for s in result.steps] == [1, 0, 0]
    assert result.steps[1].calls[0].arguments == {"department": "finance"}  # the second step ran it


def test_a_kept_call_runs_beside_a_discarded_example_call():
    made: list[str] = []
    both = hermes_call("find_employee", name="Ben") + "\n" + hermes_call("department_info", department="finance")
    backend = ScriptedBackend([both, hermes_call("department_info", department="research"), "340000 EUR."])
    agent = Agent(backend, tools=[find_employee, department_tool(made)], tool_format="hermes")
    result = agent.run("What is the yearly budget of Ben's department?")
    assert made == ["research"] and result.output == "340000 EUR."
    # Both results come back in the order of the calls: Ben's department, then the note about the guess.
    notes = [m.content for m in backend.requests[1].messages[-2:]]
    assert notes[0] == "find_employee returned: Ben: department research" and "was not run" in notes[1]
