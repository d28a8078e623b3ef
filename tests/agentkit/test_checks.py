"""Step checks (`Agent(step_checks=...)`): the shipped defaults, visible, and checks of the user's own."""

from __future__ import annotations

import inspect

import pytest

from agentkit import Agent, tool
from agentkit.checks import DEFAULT_STEP_CHECKS, Discard, GroundedCalls, JudgedCalls, MoreCalls, PruneCalls, ScopedCheck
from agentkit.testing import ScriptedBackend
from agentkit.trace import read_trace

RATES = {"EUR": 1.1, "GBP": 1.3}


def rate_tool(asked: list[str]):
    @tool
    def exchange_rate(currency: str) -> str:
        """The rate of a currency in US dollars."""
        asked.append(currency)
        return str(RATES.get(currency, "unknown"))

    return exchange_rate


class AllowedCurrencies:
    """A user's check: only currencies the desk trades may be looked up."""

    name = "allowed_currencies"

    def __init__(self, allowed: set[str]) -> None:
        self.allowed = allowed
        self.seen: list[list[str]] = []

    async def __call__(self, context, step):
        self.seen.append([c.arguments["currency"] for c in step.calls])
        return [
            Discard(call=c, reason=f"the desk does not trade {c.arguments['currency']}")
            for c in step.calls if c.arguments["currency"] not in self.allowed
        ]


def call(*currencies: str) -> dict:
    return {"calls": [{"name": "exchange_rate", "arguments": {"currency": c}} for c in currencies]}


def test_a_users_check_discards_a_call_and_the_model_answers_without_it(tmp_path):
    asked: list[str] = []
    backend = ScriptedBackend([call("JPY"), {"final_answer": "We do not trade yen."}])
    agent = Agent(backend, tools=[rate_tool(asked)], step_checks=(*DEFAULT_STEP_CHECKS, AllowedCurrencies({"EUR"})),
                  trace=tmp_path / "run.jsonl")
    run = agent.run("What is the JPY rate?")
    assert run.output == "We do not trade yen." and asked == []
    (step,) = run.steps
    assert [(d.call.arguments, d.reason, d.check) for d in step.discarded] == [
        ({"currency": "JPY"}, "the desk does not trade JPY", "allowed_currencies")
    ]
    # The model read which call was not run and why, in the check's own words.
    assert backend.requests[1].messages[-1].content == (
        "[exchange_rate was not run: the desk does not trade JPY. Answer the user without it.]"
    )
    dropped = [e for e in read_trace(tmp_path / "run.jsonl") if e["event"] == "calls_dropped"]
    assert [(e["check"], e["reason"], [c["arguments"] for c in e["calls"]]) for e in dropped] == [
        ("allowed_currencies", "the desk does not trade JPY", [{"currency": "JPY"}])
    ]


def test_a_check_discarding_some_calls_lets_the_others_run_without_asking_again():
    asked: list[str] = []
    backend = ScriptedBackend([call("EUR", "JPY"), {"final_answer": "1.1"}])
    run = Agent(backend, tools=[rate_tool(asked)], step_checks=[AllowedCurrencies({"EUR"})]).run("EUR and JPY rates?")
    assert asked == ["EUR"] and len(backend.requests) == 2
    assert [d.call.arguments["currency"] for d in run.steps[0].discarded] == ["JPY"]
    # The history shows the step as carried out.
    assistant = [m.content for m in backend.requests[1].messages if m.role == "assistant"][-1]
    assert "EUR" in assistant and "JPY" not in assistant


def test_the_defaults_are_visible_in_the_signature_describe_and_the_trace(tmp_path):
    assert inspect.signature(Agent).parameters["step_checks"].default is DEFAULT_STEP_CHECKS
    assert (
        MoreCalls(first_step_only=True), PruneCalls(formats=("agentkit",)), GroundedCalls(),
        JudgedCalls(skip_formats=("agentkit",), first_step_only=True),
    ) == DEFAULT_STEP_CHECKS
    listed = [
        "more_calls(first_step_only=True)", "prune_calls(formats=('agentkit',))",
        "grounded_calls", "judged_calls(skip_formats=('agentkit',), first_step_only=True)",
    ]
    agent = Agent(ScriptedBackend([{"final_answer": "ok"}]), trace=tmp_path / "run.jsonl")
    assert agent.describe()["step_checks"] == listed
    agent.run("Hi")
    (start,) = [e for e in read_trace(tmp_path / "run.jsonl") if e["event"] == "run_start"]
    assert start["step_checks"] == listed
    ours = Agent(ScriptedBackend([]), step_checks=[GroundedCalls(), AllowedCurrencies(set())])
    assert ours.describe()["step_checks"] == ["grounded_calls", "allowed_currencies"]


def test_checks_run_in_order_each_on_the_step_the_previous_left():
    asked: list[str] = []
    first, second = AllowedCurrencies({"EUR", "GBP"}), AllowedCurrencies({"EUR"})
    second.name = "eur_only"
    backend = ScriptedBackend([call("EUR", "GBP", "JPY"), {"final_answer": "1.1"}])
    run = Agent(backend, tools=[rate_tool(asked)], step_checks=[first, second]).run("EUR, GBP and JPY rates?")
    assert first.seen == [["EUR", "GBP", "JPY"]] and second.seen == [["EUR", "GBP"]]
    assert asked == ["EUR"]
    assert [(d.call.arguments["currency"], d.check) for d in run.steps[0].discarded] == [("JPY", "allowed_currencies"), ("GBP", "eur_only")]


def test_a_check_emptying_the_step_stops_the_later_checks():
    asked: list[str] = []
    first, later = AllowedCurrencies(set()), AllowedCurrencies(set())
    backend = ScriptedBackend([call("JPY"), {"final_answer": "No."}])
    Agent(backend, tools=[rate_tool(asked)], step_checks=[first, later]).run("JPY rate?")
    assert first.seen == [["JPY"]] and later.seen == []  # the step became an answer: no calls left to check


def test_no_checks_at_all():
    """The invented call `GroundedCalls` drops by default runs with `step_checks=()`."""
    invented = {"calls": [{"name": "add", "arguments": {"a": 2, "b": 3}}]}
    made: list[tuple[int, int]] = []

    @tool
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        made.append((a, b))
        return a + b

    Agent(ScriptedBackend([invented, {"final_answer": "Paris"}]), tools=[add]).run("Capital of France?")
    assert made == []
    run = Agent(ScriptedBackend([invented, {"final_answer": "Paris"}]), tools=[add], step_checks=()).run("Capital of France?")
    assert made == [(2, 3)] and run.steps[0].discarded == []


@pytest.mark.parametrize("check", [PruneCalls(), JudgedCalls()], ids=["prune", "judged"])
def test_a_scoring_check_does_nothing_on_a_backend_that_cannot_score(check):
    asked: list[str] = []
    backend = ScriptedBackend([call("EUR", "GBP"), {"final_answer": "1.1 and 1.3"}])
    run = Agent(backend, tools=[rate_tool(asked)], step_checks=[check]).run("EUR and GBP rates?")
    assert asked == ["EUR", "GBP"] and run.steps[0].discarded == []
    assert len(backend.requests) == 2  # no extra question was put to the model


def test_a_scoped_check_of_the_users_own_applies_only_to_its_formats():
    class NoCalls(ScopedCheck):
        name = "no_calls"

        async def check(self, context, step):
            return [Discard(call=c, reason="no tools today") for c in step.calls]

    asked: list[str] = []
    hermes = '<tool_call>\n{"name": "exchange_rate", "arguments": {"currency": "EUR"}}\n</tool_call>'
    Agent(ScriptedBackend([call("EUR"), {"final_answer": "1.1"}]), tools=[rate_tool(asked)],
          step_checks=[NoCalls(formats=("hermes",))]).run("EUR rate?")
    assert asked == ["EUR"]
    run = Agent(ScriptedBackend([hermes, "I cannot look rates up today."]), tools=[rate_tool(asked)], tool_format="hermes",
                step_checks=[NoCalls(formats=("hermes",))]).run("EUR rate?")
    assert asked == ["EUR"] and run.output == "I cannot look rates up today."


def test_a_discard_naming_a_call_the_step_does_not_have_is_ignored():
    from agentkit.types import ToolCall

    class Confused:
        name = "confused"

        async def __call__(self, context, step):
            return [Discard(call=ToolCall(id="x", name="exchange_rate", arguments={"currency": "CHF"}), reason="?")]

    asked: list[str] = []
    run = Agent(ScriptedBackend([call("EUR"), {"final_answer": "1.1"}]), tools=[rate_tool(asked)], step_checks=[Confused()]).run("EUR?")
    assert asked == ["EUR"] and run.steps[0].discarded == []


def test_something_that_is_not_a_check_is_refused_when_the_agent_is_made():
    async def nameless(context, step):
        return []

    with pytest.raises(TypeError, match="a step check has a `name`"):
        Agent(ScriptedBackend([]), step_checks=[nameless])
