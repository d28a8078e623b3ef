"""Extra tool calls the model itself finds unlikely are discarded before they run (`agentkit.checks.PruneCalls`)."""

from __future__ import annotations

import pytest

from agentkit import Agent, GenerationRequest, tool
from agentkit.checks import GroundedCalls, PruneCalls
from agentkit.testing import ScriptedBackend
from agentkit.trace import read_trace

TWO_CITIES = {"calls": [
    {"name": "get_weather", "arguments": {"city": "Oslo"}},
    {"name": "get_weather", "arguments": {"city": "Lima"}},
    {"name": "get_weather", "arguments": {"city": "Rome"}},
]}


class ScoringScript(ScriptedBackend):
    """Scripted replies, and scores that prefer the reply with `preferred_calls` calls."""

    def __init__(self, replies, preferred_calls: int) -> None:
        super().__init__(replies)
        self.preferred_calls = preferred_calls
        self.scored: list[str] = []

    def score(self, request: GenerationRequest, replies: list[str]) -> list[float]:
        self.scored += replies
        return [-abs(reply.count('"name"') - self.preferred_calls) - 1.0 for reply in replies]


def weather_tool(made: list[str]):
    @tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        made.append(city)
        return f"sun in {city}"

    return get_weather


def test_calls_the_model_scores_below_stopping_are_dropped_and_never_run(tmp_path):
    made: list[str] = []
    backend = ScoringScript([TWO_CITIES, {"final_answer": "Sunny."}], preferred_calls=1)
    trace = tmp_path / "run.jsonl"
    run = Agent(backend, tools=[weather_tool(made)], trace=trace).run("What is the weather in Oslo?")
    assert made == ["Oslo"]
    step = run.steps[0]
    assert [c.arguments for c in step.calls] == [{"city": "Oslo"}]
    assert [(d.call.arguments["city"], d.check) for d in step.discarded] == [("Lima", "prune_calls"), ("Rome", "prune_calls")]
    assert step.raw_output.count("Lima") == 1  # what the model wrote is kept as written
    # The next prompt shows the step as carried out: one call, one observation.
    history = backend.requests[1].messages
    assistant = [m.content for m in history if m.role == "assistant"][-1]
    assert "Oslo" in assistant and "Lima" not in assistant and "Rome" not in assistant
    dropped = [e for e in read_trace(trace) if e["event"] == "calls_dropped"]
    assert [[c["arguments"]["city"] for c in e["calls"]] for e in dropped] == [["Lima", "Rome"]]
    assert [(e["check"], e["reason"]) for e in dropped] == [("prune_calls", "it is less likely than stopping")]
    assert len(backend.requests) == 2  # it never empties a step, so the model is never asked again


def test_calls_the_model_finds_likely_are_all_kept():
    made: list[str] = []
    backend = ScoringScript([TWO_CITIES, {"final_answer": "Sunny."}], preferred_calls=3)
    run = Agent(backend, tools=[weather_tool(made)]).run("Weather in Oslo, Lima and Rome?")
    assert made == ["Oslo", "Lima", "Rome"] and run.steps[0].discarded == []
    assert len(backend.scored) == 2  # the whole step against the step without its last call, once


@pytest.mark.parametrize("why", ["turned off", "a native format", "backend cannot score"])
def test_nothing_is_dropped_when_off_or_out_of_scope_or_unscorable(why):
    made: list[str] = []
    backend = ScoringScript([TWO_CITIES, {"final_answer": "Sunny."}], preferred_calls=1)
    if why == "turned off":
        agent = Agent(backend, tools=[weather_tool(made)], step_checks=[GroundedCalls()])
    elif why == "a native format":  # on Qwen2.5-Coder-1.5B pruning dropped a correct second call: off by default
        hermes = "\n".join(f'<tool_call>\n{{"name": "get_weather", "arguments": {{"city": "{c}"}}}}\n</tool_call>' for c in ("Oslo", "Lima", "Rome"))
        agent = Agent(ScoringScript([hermes, "Sunny."], preferred_calls=1), tools=[weather_tool(made)], tool_format="hermes",
                      step_checks=[PruneCalls(formats=("agentkit",))])
    else:
        agent = Agent(ScriptedBackend([TWO_CITIES, {"final_answer": "Sunny."}]), tools=[weather_tool(made)])
    agent.run("What is the weather in Oslo?")
    assert made == ["Oslo", "Lima", "Rome"]


def test_the_cli_shows_dropped_calls_as_not_run():
    from rich.console import Console

    from agentkit.cli.live import print_step

    backend = ScoringScript([TWO_CITIES, {"final_answer": "Sunny."}], preferred_calls=1)
    run = Agent(backend, tools=[weather_tool([])]).run("What is the weather in Oslo?")
    console = Console(record=True, width=200)
    print_step(console, run.steps[0])
    shown = console.export_text()
    assert 'get_weather({"city": "Oslo"})' in shown and "→ sun in Oslo" in shown
    assert 'get_weather({"city": "Lima"}) (not run: it is less likely than stopping)' in shown
