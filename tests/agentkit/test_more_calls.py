"""A step that stopped after some of the calls its task asks for is asked for one more (`agentkit.checks.MoreCalls`).

The model here is scripted (behind the `Scorer` protocol, as a local engine is): each continuation it
is asked for is the next reply of the script. What the real model writes when asked is measured in
benchmarks/RESULTS.md; that the continuation grammar holds under random weights is in
tests/engine/test_guarantee.py.
"""

from __future__ import annotations

import json

from agentkit import Agent, LarkConstraint, tool
from agentkit.checks import GroundedCalls, MoreCalls
from agentkit.checks.more_calls import brings_new_value
from agentkit.formats import make_tool_format
from agentkit.registry import ToolRegistry
from agentkit.testing import ScriptedBackend
from agentkit.trace import read_trace
from agentkit.types import ToolCall


class LocalScript(ScriptedBackend):
    """Scripted replies from a backend that counts as a local engine (it can score, so it decodes grammars)."""

    def score(self, request, replies):
        return [-1.0 for _ in replies]


def forecast_tool(made: list[str]):
    @tool
    def get_forecast(city: str) -> str:
        """The weather forecast for a city."""
        made.append(city)
        return f"sun in {city}"

    return get_forecast


def fenced(*cities: str) -> str:
    calls = [json.dumps({"name": "get_forecast", "arguments": {"city": c}}) for c in cities]
    return "```json\n" + "\n".join(calls) + "\n```"


def test_the_call_the_model_left_out_is_asked_for_and_runs(tmp_path):
    made: list[str] = []
    backend = LocalScript([fenced("Oslo"), fenced("Oslo", "Lima"), fenced("Oslo", "Lima", "Oslo"), "Sun in both."])
    agent = Agent(backend, tools=[forecast_tool(made)], tool_format="hermes", step_checks=(MoreCalls(),), trace=tmp_path / "run.jsonl")
    run = agent.run("What's the weather in Oslo and in Lima?")
    assert made == ["Oslo", "Lima"]
    assert run.output == "Sun in both."
    step = run.steps[0]
    assert [c.arguments["city"] for c in step.calls] == ["Oslo", "Lima"]
    assert step.raw_output == fenced("Oslo", "Lima")
    # Asked with a grammar that keeps the reply as written and adds one call inside the fence.
    continuation = backend.requests[1].constraint
    assert isinstance(continuation, LarkConstraint)
    assert continuation.grammar.startswith("start: " + json.dumps(fenced("Oslo").removesuffix("\n```")))
    assert step.usage.completion_tokens > len(fenced("Oslo").split())  # the asking is counted
    added = [e for e in read_trace(tmp_path / "run.jsonl") if e["event"] == "calls_added"]
    assert [[c["arguments"]["city"] for c in e["calls"]] for e in added] == [["Lima"]]


def test_a_call_with_a_value_of_its_own_or_another_tool_is_not_added():
    made: list[str] = []

    @tool
    def get_time(city: str) -> str:
        """The local time in a city."""
        return "noon"

    backend = LocalScript([
        fenced("Oslo"),
        fenced("Oslo", "Paris"),  # Paris is nowhere in the conversation: the model's own choice
        "Sun in Oslo.",
    ])
    agent = Agent(backend, tools=[forecast_tool(made), get_time], tool_format="hermes", step_checks=(MoreCalls(),))
    assert agent.run("What's the weather in Oslo?").output == "Sun in Oslo."
    assert made == ["Oslo"]
    other = ToolCall(id="2", name="get_time", arguments={"city": "Lima"})
    assert not brings_new_value(other, [ToolCall(id="1", name="get_forecast", arguments={"city": "Oslo"})], {}, "Oslo and Lima")


def test_only_a_runs_first_step_is_asked_by_default_and_later_checks_see_the_calls_added():
    made: list[str] = []
    backend = LocalScript([
        fenced("Oslo"), fenced("Oslo", "Lima"), fenced("Oslo", "Lima", "Lima"),  # step 1, two continuations
        fenced("Quito"),  # step 2: not continued (first step only), and GroundedCalls sees it
        "Done.",
    ])
    checks = (MoreCalls(first_step_only=True), GroundedCalls())
    agent = Agent(backend, tools=[forecast_tool(made)], tool_format="hermes", step_checks=checks)
    run = agent.run("What's the weather in Oslo and in Lima? Then in Quito.")
    assert made == ["Oslo", "Lima", "Quito"]
    assert run.output == "Done." and len(backend.requests) == 5


def test_values_already_used_or_fixed_by_the_schema_are_not_new():
    params = {"properties": {"x": {"type": "number"}, "f": {"type": "string"}, "method": {"enum": ["simpson", "trapezoid"]}}}
    first = ToolCall(id="1", name="integrate", arguments={"f": "3x^2 + 2x - 1", "x": 0, "method": "simpson"})
    task = "Integrate 3x^2 + 2x - 1 from 0, with the simpson method; then 2x at 4."
    again = ToolCall(id="2", name="integrate", arguments={"f": "3x^2 + 2x - 1", "x": 1, "method": "trapezoid"})
    assert not brings_new_value(again, [first], params, task)  # 1 is in the first call's function; the method is a choice
    assert brings_new_value(ToolCall(id="3", name="integrate", arguments={"f": "2x", "x": 4}), [first], params, task)
    swapped = ToolCall(id="4", name="gcd", arguments={"a": 128, "b": 96})
    assert not brings_new_value(swapped, [ToolCall(id="5", name="gcd", arguments={"a": 96, "b": 128})], {}, "gcd of 96 and 128")


def test_each_format_continues_its_own_spelling():
    registry = ToolRegistry([forecast_tool([])])
    call = ToolCall(id="1", name="get_forecast", arguments={"city": "Oslo"})
    kept_for = {"hermes": lambda t: t, "llama3_json": lambda t: t, "pythonic": lambda t: t.removesuffix("]")}  # inside the list
    for name, kept in kept_for.items():
        fmt = make_tool_format(name, registry)
        text = fmt.render_calls([call])
        constraint = fmt.one_more_call_constraint(text)
        assert constraint is not None and constraint.grammar.startswith(f"start: {json.dumps(kept(text))} ")
    hermes = make_tool_format("hermes", registry)
    prose = "I'll look it up.\n" + fenced("Oslo")
    assert hermes.one_more_call_constraint(prose).grammar.startswith("start: " + json.dumps(prose.removesuffix("\n```")))
    assert not hasattr(make_tool_format("agentkit", registry), "one_more_call_constraint")  # its JSON steps are not continued


def test_a_value_another_tool_of_the_step_was_given_is_not_new():
    step = [
        ToolCall(id="1", name="find_supermarket", arguments={"city": "Los Angeles"}),
        ToolCall(id="2", name="find_sights", arguments={"city": "Miami"}),
    ]
    task = "Find a supermarket in Los Angeles and the sights of Miami."
    assert not brings_new_value(ToolCall(id="3", name="find_supermarket", arguments={"city": "Miami"}), step, {}, task)
