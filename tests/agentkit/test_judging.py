"""The model judges each call of a run's first step; a call it judges unfit is not run (`agentkit.checks.JudgedCalls`).

The judge here is a scripted model behind the `Scorer` protocol (its yes/no scores are set by the
test); the real model's judgement is measured in benchmarks/RESULTS.md and checked on the reference
model in tests/engine/test_reference_models.py.
"""

from __future__ import annotations

import json

import pytest

from agentkit import Agent, Generation, tool
from agentkit.checks import GroundedCalls, JudgedCalls
from agentkit.formats import HermesFormat
from agentkit.registry import ToolRegistry
from agentkit.testing import ScriptedBackend
from agentkit.trace import read_trace

CALL = '<tool_call>\n{"name": "get_forecast", "arguments": {"city": "Oslo"}}\n</tool_call>'


class JudgingBackend(ScriptedBackend):
    """Scripted steps, and a judge that answers "no" about calls whose question holds any of `unfit`."""

    def __init__(self, replies, *, unfit: tuple[str, ...] = ()) -> None:
        super().__init__(replies)
        self.unfit = unfit
        self.questions: list[str] = []

    def generate(self, request):
        grammar = getattr(request.constraint, "grammar", None) or ""
        if grammar.startswith('start: "'):  # asked for one more call (MoreCalls): it adds none, its reply stays as it was
            kept, _ = json.JSONDecoder().raw_decode(grammar, len("start: "))
            return Generation(text=kept)
        return super().generate(request)

    def score(self, request, replies):
        question = request.messages[-1].content
        self.questions.append(question)
        likely_no = any(u in question for u in self.unfit)
        scores = {"yes": -2.0 if likely_no else -0.2, "no": -0.2 if likely_no else -2.0}
        return [scores[r.lower()] for r in replies]


def forecast_tool(made: list[str]):
    @tool
    def get_forecast(city: str) -> str:
        """The weather forecast for a city."""
        made.append(city)
        return f"sun in {city}"

    return get_forecast


def test_a_call_the_model_judges_unfit_is_not_run_and_the_model_is_told_so_and_answers(tmp_path):
    made: list[str] = []
    backend = JudgingBackend([CALL, "Lima is the capital of Peru."], unfit=("get_forecast",))
    agent = Agent(backend, tools=[forecast_tool(made)], tool_format="hermes", trace=tmp_path / "run.jsonl")
    result = agent.run("What is the capital of Peru?")
    assert result.output == "Lima is the capital of Peru."
    assert made == []
    (step,) = result.steps
    assert [(d.call.arguments, d.check) for d in step.discarded] == [({"city": "Oslo"}, "judged_calls")]
    assert "Request: What is the capital of Peru?" in backend.questions[0]
    # Asked for the answer, the model sees its call and a note that it was not run, and its grammar has no calls.
    answer_request = backend.requests[1]
    assert answer_request.messages[-2].role == "assistant" and "get_forecast" in answer_request.messages[-2].content
    assert answer_request.messages[-1].role == "tool"
    assert "was not run: it does not fit the request" in answer_request.messages[-1].content
    assert "<tool_call>" not in answer_request.constraint.grammar
    assert "get_forecast" not in result.messages[-1].content  # the history shows the answer
    events = read_trace(tmp_path / "run.jsonl")
    dropped = [(e["check"], e["reason"]) for e in events if e["event"] == "calls_dropped"]
    assert dropped == [("judged_calls", "it does not fit the request")]


def test_a_call_judged_fit_runs():
    made: list[str] = []
    backend = JudgingBackend([CALL, "Sunny in Oslo."])
    result = Agent(backend, tools=[forecast_tool(made)], tool_format="hermes").run("Weather in Oslo tomorrow?")
    assert made == ["Oslo"] and result.steps[0].discarded == []
    assert len(backend.questions) == 1


def test_only_the_fitting_calls_of_a_step_run():
    made: list[str] = []
    two = CALL + "\n" + CALL.replace("Oslo", "Atlantis")
    backend = JudgingBackend([two, "Sunny."], unfit=("Atlantis",))
    result = Agent(backend, tools=[forecast_tool(made)], tool_format="hermes").run("Weather in Oslo?")
    assert made == ["Oslo"]
    assert [d.call.arguments["city"] for d in result.steps[0].discarded] == ["Atlantis"]


def test_only_a_runs_first_step_is_judged():
    """Later calls take their values from tool results, which the short question would not show."""
    made: list[str] = []
    second = CALL.replace("Oslo", "Bergen")
    backend = JudgingBackend([CALL, second, "Sunny in both."], unfit=("Bergen",))
    Agent(backend, tools=[forecast_tool(made)], tool_format="hermes").run("Weather in Oslo, then in the next city?")
    assert made == ["Oslo", "Bergen"]
    assert len(backend.questions) == 1


def test_judging_every_step_is_a_setting():
    made: list[str] = []
    second = CALL.replace("Oslo", "Bergen")
    backend = JudgingBackend([CALL, second, "Sunny in Oslo."], unfit=("Bergen",))
    result = Agent(backend, tools=[forecast_tool(made)], tool_format="hermes", step_checks=[JudgedCalls()]).run("Weather in Oslo?")
    assert made == ["Oslo"] and len(backend.questions) == 2
    assert [d.call.arguments["city"] for d in result.steps[1].discarded] == ["Bergen"]


def test_a_backend_that_cannot_score_is_not_judged():
    made: list[str] = []
    Agent(ScriptedBackend([CALL, "Sunny."]), tools=[forecast_tool(made)], tool_format="hermes").run("Capital of Peru?")
    assert made == ["Oslo"]


@pytest.mark.parametrize(("tool_format", "judged"), [("hermes", True), ("pythonic", True), ("agentkit", False)])
def test_on_by_default_for_native_formats_only(tool_format, judged):
    step = CALL if tool_format == "hermes" else '[get_forecast(city="Oslo")]' if tool_format == "pythonic" else {
        "calls": [{"name": "get_forecast", "arguments": {"city": "Oslo"}}]}
    made: list[str] = []
    backend = JudgingBackend([step, "Sunny."] if tool_format != "agentkit" else [step, {"final_answer": "Sunny."}], unfit=("get_forecast",))
    Agent(backend, tools=[forecast_tool(made)], tool_format=tool_format).run("What is the capital of Peru?")
    assert (made == []) is judged
    assert bool(backend.questions) is judged


def test_turned_off_the_unfit_call_runs():
    made: list[str] = []
    backend = JudgingBackend([CALL, "Sunny."], unfit=("get_forecast",))
    agent = Agent(backend, tools=[forecast_tool(made)], tool_format="hermes", step_checks=[GroundedCalls()])
    agent.run("What is the capital of Peru?")
    assert made == ["Oslo"] and backend.questions == []


def test_the_answer_only_grammar_refuses_a_call_written_as_text(smollm2_tokenizer):
    """Asked for an answer, Qwen2.5-Coder wrote its dropped call again in a ```json fence: the grammar refuses it."""
    from agentkit.engine.grammar import GrammarCompiler

    compiler = GrammarCompiler(smollm2_tokenizer)
    made: list[str] = []
    answer_only = HermesFormat(ToolRegistry([forecast_tool(made)]), answer_only=True)

    def accepts(text: str) -> bool:
        matcher = compiler.matcher(answer_only.constraint())
        tokens = smollm2_tokenizer.encode(text, add_special_tokens=False)
        return all(matcher.consume_token(t) for t in tokens) and matcher.is_accepting()

    assert accepts("Lima is the capital of Peru.")
    assert accepts("Lima.\n```python\nprint('Lima')\n```")  # other fences are prose
    for call in (CALL, '{"name": "get_forecast", "arguments": {"city": "Oslo"}}', '```json\n{"name": "get_forecast"}\n```'):
        assert not accepts(call)


class YesSayingBackend(JudgingBackend):
    """A judge that leans "yes" to every question (as small models do), less so when asked whether a fitting call is wrong."""

    def score(self, request, replies):
        question = request.messages[-1].content
        self.questions.append(question)
        against = "wrong thing to do" in question
        unfit = any(u in question for u in self.unfit)
        lean_yes = 2.0 if (against and unfit) else 0.5 if against else 1.0  # log-odds of "yes"
        return [(0.0 if r.lower() == "yes" else -lean_yes) for r in replies]


@pytest.mark.parametrize("contrasted", [False, True])
def test_a_contrasted_judge_cancels_a_yes_saying_models_lean(contrasted):
    made: list[str] = []
    two = CALL + "\n" + CALL.replace("Oslo", "Atlantis")
    backend = YesSayingBackend([two, "Sunny in Oslo."], unfit=("Atlantis",))
    checks = (JudgedCalls(skip_formats=("agentkit",), first_step_only=True, contrasted=contrasted),)
    result = Agent(backend, tools=[forecast_tool(made)], tool_format="hermes", step_checks=checks).run("Weather in Oslo tomorrow?")
    if contrasted:  # "fits" +1 and "is wrong" +2 for Atlantis: -1 overall; Oslo: +1 - 0.5
        assert made == ["Oslo"] and [d.call.arguments for d in result.steps[0].discarded] == [{"city": "Atlantis"}]
        assert sum("wrong thing to do" in q for q in backend.questions) == 2
    else:  # the yes-saying judge lets both run
        assert made == ["Oslo", "Atlantis"] and len(backend.questions) == 2
