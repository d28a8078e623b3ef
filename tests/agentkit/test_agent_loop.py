"""The planner loop, driven by scripted backends: steps, observations, retries, limits and prompts."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Literal

import pytest
from pydantic import BaseModel

from agentkit import (
    Agent,
    Example,
    ExampleCall,
    GenerationRequest,
    InvalidStepError,
    JsonSchemaConstraint,
    MaxStepsExceeded,
    RunResult,
    SamplingSettings,
    Step,
    StepLimits,
    ToolRegistry,
    tool,
)
from agentkit.testing import FunctionBackend, ScriptedBackend
from agentkit.tools import calculator


def calc(expression: str) -> dict:
    return {"calls": [{"name": "calculator", "arguments": {"expression": expression}}]}


def final(answer) -> dict:
    return {"final_answer": answer}


@tool
def echo(text: str) -> str:
    """Return the text unchanged.

    Args:
        text: the text to send back.
    """
    return f"echo: {text}"


@tool
def weather(city: str, unit: Literal["C", "F"] = "C") -> str:
    """Current weather for a city.

    Args:
        city: the city name, e.g. "Paris".
        unit: temperature unit.
    """
    return f"18°{unit} in {city}"


class Answer(BaseModel):
    value: int
    explanation: str


# -- a basic run ----------------------------------------------------------------------------------


def test_two_step_run_gives_output_steps_usage_and_messages():
    backend = ScriptedBackend([calc("17 * 23"), final("391")])
    agent = Agent(backend, tools=[calculator], examples=[])
    result = agent.run("What is 17 * 23?")

    assert isinstance(result, RunResult)
    assert result.output == "391"
    assert [s.index for s in result.steps] == [1, 2]
    first, last = result.steps
    assert first.is_final is False
    assert [(c.name, c.arguments) for c in first.calls] == [("calculator", {"expression": "17 * 23"})]
    assert [(o.name, o.content, o.is_error) for o in first.observations] == [("calculator", "391", False)]
    assert first.observations[0].call_id == first.calls[0].id
    assert first.raw_output == json.dumps(calc("17 * 23"))
    assert last.is_final is True and last.output == "391" and last.calls == [] and last.observations == []

    # Usage is summed over the steps (ScriptedBackend counts whitespace-separated words).
    assert result.usage.model_calls == 2
    assert result.usage.completion_tokens == sum(len(json.dumps(r).split()) for r in [calc("17 * 23"), final("391")])
    assert result.usage.completion_tokens == first.usage.completion_tokens + last.usage.completion_tokens
    assert result.seconds > 0

    # The conversation: system, task, call, tool result, answer.
    assert [m.role for m in result.messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert result.messages[1].content == "What is 17 * 23?"
    tool_message = result.messages[3]
    assert tool_message.name == "calculator" and "391" in tool_message.content
    # The second request showed the model the tool's result.
    assert len(backend.requests) == 2
    assert any(m.role == "tool" and "391" in m.content for m in backend.requests[1].messages)
    assert backend.requests[0].constraint == JsonSchemaConstraint(json_schema=agent.tool_format.grammar_schema())


def test_several_calls_in_one_step_all_run_in_order():
    backend = ScriptedBackend(
        [
            {"calls": [{"name": "calculator", "arguments": {"expression": "2+2"}}, {"name": "echo", "arguments": {"text": "hi"}}]},
            final("done"),
        ]
    )
    result = Agent(backend, tools=[calculator, echo], examples=[]).run("go")
    assert [o.content for o in result.steps[0].observations] == ["4", "echo: hi"]
    assert [m.role for m in result.messages].count("tool") == 2


def test_iter_yields_steps_one_by_one():
    backend = ScriptedBackend([calc("1 + 1"), calc("2 * 3"), final("6")])
    agent = Agent(backend, tools=[calculator], examples=[])
    seen = []
    for step in agent.iter("Compute"):
        assert isinstance(step, Step)
        # Each step arrives with its tool calls already run, before the next model call is made.
        assert len(backend.requests) == step.index
        seen.append((step.index, step.is_final, [o.content for o in step.observations]))
    assert seen == [(1, False, ["2"]), (2, False, ["6"]), (3, True, [])]


def test_iter_stops_early_without_asking_the_model_again():
    backend = ScriptedBackend([calc("1 + 1"), calc("2 * 3"), final("6")])
    for step in Agent(backend, tools=[calculator], examples=[]).iter("Compute"):  # noqa: B007  # read after the loop
        break
    assert step.index == 1
    assert len(backend.requests) == 1


def test_arun_works():
    backend = ScriptedBackend([calc("17 * 23"), final("391")])
    result = asyncio.run(Agent(backend, tools=[calculator], examples=[]).arun("What is 17 * 23?"))
    assert result.output == "391" and len(result.steps) == 2


def test_aiter_yields_steps():
    async def collect() -> list[Step]:
        agent = Agent(ScriptedBackend([calc("1 + 1"), final("2")]), tools=[calculator], examples=[])
        return [step async for step in agent.aiter("Add")]

    steps = asyncio.run(collect())
    assert [(s.index, s.is_final) for s in steps] == [(1, False), (2, True)]


def test_arun_runs_async_tools_on_the_callers_loop():
    loops = []

    @tool
    async def where() -> str:
        """Report the event loop."""
        loops.append(asyncio.get_running_loop())
        return "here"

    async def main():
        agent = Agent(ScriptedBackend([{"calls": [{"name": "where", "arguments": {}}]}, final("ok")]), tools=[where], examples=[])
        result = await agent.arun("where?")
        return result, asyncio.get_running_loop()

    result, loop = asyncio.run(main())
    assert result.output == "ok" and loops == [loop]


def test_run_inside_a_running_event_loop_still_works():
    async def main() -> RunResult:
        agent = Agent(ScriptedBackend([calc("17 * 23"), final("391")]), tools=[calculator], examples=[])
        return agent.run("What is 17 * 23?")  # sync call from async code, as in a notebook

    result = asyncio.run(main())
    assert result.output == "391"
    assert result.steps[0].observations[0].content == "391"


def test_iter_inside_a_running_event_loop_still_works():
    async def main() -> list[int]:
        agent = Agent(ScriptedBackend([calc("1 + 1"), final("2")]), tools=[calculator], examples=[])
        return [step.index for step in agent.iter("Add")]

    assert asyncio.run(main()) == [1, 2]


def test_errors_inside_a_running_event_loop_reach_the_caller():
    async def main() -> None:
        Agent(ScriptedBackend([calc("1 + 1")] * 3), tools=[calculator], examples=[], max_steps=2).run("loop")

    with pytest.raises(MaxStepsExceeded) as info:
        asyncio.run(main())
    assert len(info.value.partial.steps) == 2


# -- failures become observations ----------------------------------------------------------------


@tool
def explode(reason: str) -> str:
    """Always fails."""
    raise RuntimeError(f"boom: {reason}")


def test_tool_exception_becomes_an_observation_and_the_loop_continues():
    backend = ScriptedBackend([{"calls": [{"name": "explode", "arguments": {"reason": "disk full"}}]}, final("sorry")])
    result = Agent(backend, tools=[explode], examples=[]).run("do it")
    observation = result.steps[0].observations[0]
    assert observation.is_error and observation.error_type == "exception"
    assert "boom: disk full" in observation.content
    assert result.output == "sorry"
    assert any("boom: disk full" in m.content for m in backend.requests[1].messages)


def test_tool_timeout_becomes_an_observation_and_the_loop_continues():
    release = threading.Event()

    @tool(timeout=0.2)
    def slow() -> str:
        """Slow."""
        release.wait(2)
        return "late"

    @tool(timeout=0.2)
    async def aslow() -> str:
        """Slow, async."""
        await asyncio.sleep(2)
        return "late"

    backend = ScriptedBackend(
        [{"calls": [{"name": "slow", "arguments": {}}, {"name": "aslow", "arguments": {}}]}, final("gave up")]
    )
    started = time.perf_counter()
    try:
        result = Agent(backend, tools=[slow, aslow], examples=[]).run("go")
    finally:
        release.set()
    assert time.perf_counter() - started < 1.5
    assert [(o.error_type, o.is_error) for o in result.steps[0].observations] == [("timeout", True), ("timeout", True)]
    assert result.output == "gave up"


def test_the_registry_timeout_applies_to_tools_without_their_own():
    @tool
    async def aslow() -> str:
        """Slow."""
        await asyncio.sleep(2)
        return "late"

    backend = ScriptedBackend([{"calls": [{"name": "aslow", "arguments": {}}]}, final("x")])
    result = Agent(backend, tools=ToolRegistry([aslow], timeout=0.1), examples=[]).run("go")
    assert result.steps[0].observations[0].error_type == "timeout"


def test_invalid_arguments_become_an_observation_and_the_loop_continues():
    backend = ScriptedBackend([{"calls": [{"name": "weather", "arguments": {"city": "Oslo", "unit": "K"}}]}, final("unknown")])
    result = Agent(backend, tools=[weather], examples=[]).run("weather?")
    observation = result.steps[0].observations[0]
    assert observation.is_error and observation.error_type == "invalid_arguments"
    assert "weather" in observation.content and "unit" in observation.content
    assert result.output == "unknown"


def test_unknown_tool_becomes_an_error_observation():
    backend = ScriptedBackend([{"calls": [{"name": "teleport", "arguments": {"to": "Mars"}}]}, final("cannot")])
    result = Agent(backend, tools=[calculator, echo], examples=[]).run("go to Mars")
    observation = result.steps[0].observations[0]
    assert observation.is_error and observation.error_type == "unknown_tool"
    assert "'teleport'" in observation.content and "calculator" in observation.content
    assert result.output == "cannot"


# -- limits and invalid replies -------------------------------------------------------------------


def test_max_steps_raises_with_every_step_in_partial():
    backend = ScriptedBackend([calc(f"{i} + 1") for i in range(5)])
    with pytest.raises(MaxStepsExceeded) as info:
        Agent(backend, tools=[calculator], examples=[], max_steps=3).run("never ends")
    partial = info.value.partial
    assert [s.index for s in partial.steps] == [1, 2, 3]
    assert [s.observations[0].content for s in partial.steps] == ["1", "2", "3"]
    assert partial.output is None
    assert partial.usage.model_calls == 3
    assert "max_steps=3" in str(info.value)
    assert len(backend.requests) == 3


def test_max_steps_must_be_positive():
    with pytest.raises(ValueError, match="max_steps"):
        Agent(ScriptedBackend([]), tools=[calculator], max_steps=0)


def test_invalid_reply_is_fed_back_and_retried():
    backend = ScriptedBackend(["The answer is 391.", final("391")])
    result = Agent(backend, tools=[calculator], examples=[]).run("What is 17 * 23?")
    assert result.output == "391"
    assert len(result.steps) == 1
    step = result.steps[0]
    assert step.rejected_outputs == ["The answer is 391."]
    assert step.usage.model_calls == 2
    retry = backend.requests[1].messages
    assert retry[-2].role == "assistant" and retry[-2].content == "The answer is 391."
    assert retry[-1].role == "user"
    assert "not a valid step" in retry[-1].content and "not valid JSON" in retry[-1].content
    # The rejected exchange does not stay in the conversation.
    assert "The answer is 391." not in [m.content for m in result.messages]


def test_length_cut_reply_is_retried_with_a_hint():
    class CutOnce(ScriptedBackend):
        def generate(self, request):
            generation = super().generate(request)
            if len(self.requests) == 1:
                generation.finish_reason = "length"
            return generation

    backend = CutOnce(['{"final_answer": "39', final("391")])
    result = Agent(backend, tools=[calculator], examples=[], sampling=SamplingSettings(max_step_tokens=7)).run("?")
    assert result.output == "391"
    assert "max_step_tokens=7" in backend.requests[1].messages[-1].content


def test_too_many_invalid_replies_raise_invalid_step_error():
    replies = [calc("1 + 1"), "not json", '{"calls": []}', '{"final_answer": 1, "calls": []}']
    backend = ScriptedBackend(replies)
    with pytest.raises(InvalidStepError) as info:
        Agent(backend, tools=[calculator], examples=[], max_invalid_retries=2).run("?")
    error = info.value
    assert error.outputs == replies[1:]
    assert [s.index for s in error.partial.steps] == [1]  # the completed step is kept
    assert error.partial.steps[0].observations[0].content == "2"
    assert "Step 2" in str(error) and "max_invalid_retries" in str(error)


def test_zero_retries_fail_on_the_first_invalid_reply():
    with pytest.raises(InvalidStepError) as info:
        Agent(ScriptedBackend(["nope"]), tools=[calculator], examples=[], max_invalid_retries=0).run("?")
    assert info.value.outputs == ["nope"]


def test_structured_output_type_gives_an_instance():
    backend = ScriptedBackend([calc("17 * 23"), final({"value": 391, "explanation": "17 times 23"})])
    result = Agent(backend, tools=[calculator], output_type=Answer, examples=[]).run("What is 17 * 23?")
    assert isinstance(result.output, Answer)
    assert result.output == Answer(value=391, explanation="17 times 23")


def test_final_answer_of_the_wrong_type_is_retried():
    backend = ScriptedBackend([final({"value": "many"}), final({"value": 3, "explanation": "counted"})])
    result = Agent(backend, tools=[calculator], output_type=Answer, examples=[]).run("How many?")
    assert result.output == Answer(value=3, explanation="counted")
    assert result.steps[0].rejected_outputs == [json.dumps(final({"value": "many"}))]
    assert "final_answer" in backend.requests[1].messages[-1].content


def test_int_output_type():
    backend = ScriptedBackend([final("391")])  # lax validation accepts a numeric string
    assert Agent(backend, tools=[calculator], output_type=int, examples=[]).run("?").output == 391


# -- unicode --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "text"),
    [
        pytest.param("把这句话原样返回", "你好，世界", id="chinese"),
        pytest.param("أعد هذا النص", "مرحبا بالعالم", id="arabic"),
        pytest.param("Повтори текст", "Привет, мир", id="russian"),
        pytest.param("यह पाठ लौटाएँ", "नमस्ते दुनिया", id="hindi"),
        pytest.param("Echo 🔁", "🌍🚀✨👩‍👩‍👧", id="emoji"),
    ],
)
def test_unicode_survives_into_observation_and_output(task, text):
    backend = FunctionBackend(
        lambda request: {"calls": [{"name": "echo", "arguments": {"text": text}}]}
        if not any(m.role == "tool" for m in request.messages[1:])
        else final(f"{text} ✓")
    )
    result = Agent(backend, tools=[echo], examples=[]).run(task)
    assert backend.requests[0].messages[-1].content == task
    assert result.steps[0].calls[0].arguments == {"text": text}
    assert result.steps[0].observations[0].content == f"echo: {text}"
    assert any(m.role == "tool" and text in m.content for m in backend.requests[1].messages)
    assert result.output == f"{text} ✓"


# -- prompts --------------------------------------------------------------------------------------


def test_system_prompt_lists_every_tool_and_argument_description():
    backend = ScriptedBackend([final("ok")])
    Agent(backend, tools=[calculator, echo, weather], instructions="You are terse.", examples=[]).run("hi")
    system = backend.requests[0].messages[0]
    assert system.role == "system"
    assert system.content.startswith("You are terse.")
    for name in ["calculator", "echo", "weather"]:
        assert f"- {name}(" in system.content
    for description in [
        "the text to send back.",
        'the city name, e.g. "Paris".',
        "temperature unit.",
        "arithmetic with numbers",
        "Current weather for a city.",
    ]:
        assert description in system.content, description
    assert '"final_answer"' in system.content and '"calls"' in system.content


def test_examples_appear_as_conversation_turns_before_the_task():
    example = Example(
        task="What is 6 * 7?",
        calls=[ExampleCall(name="calculator", arguments={"expression": "6 * 7"}, result="42")],
        answer="42",
    )
    answer_only = Example(task="Say hi", answer="hi")
    backend = ScriptedBackend([final("ok")])
    Agent(backend, tools=[calculator], examples=[example, answer_only]).run("What is 17 * 23?")
    messages = backend.requests[0].messages
    assert [m.role for m in messages] == ["system", "user", "assistant", "tool", "assistant", "user", "assistant", "user"]
    assert messages[1].content == "What is 6 * 7?"
    assert json.loads(messages[2].content) == calc("6 * 7")
    assert messages[3].name == "calculator" and "42" in messages[3].content
    assert json.loads(messages[4].content) == final("42")
    assert (messages[5].content, json.loads(messages[6].content)) == ("Say hi", final("hi"))
    assert messages[-1].content == "What is 17 * 23?"  # the task comes last


def test_default_example_is_used_when_none_given_and_not_when_empty():
    with_default = ScriptedBackend([final("ok")])
    Agent(with_default, tools=[calculator]).run("task")
    assert len(with_default.requests[0].messages) > 2
    assert with_default.requests[0].messages[-1].content == "task"
    without = ScriptedBackend([final("ok")])
    Agent(without, tools=[calculator], examples=[]).run("task")
    assert [m.role for m in without.requests[0].messages] == ["system", "user"]


def test_request_carries_sampling_settings_and_grammar():
    backend = ScriptedBackend([final("ok")])
    agent = Agent(
        backend, tools=[calculator], examples=[], sampling=SamplingSettings(temperature=0.7, top_p=0.9, seed=10, max_step_tokens=99),
        limits=StepLimits(answer_chars=50),
    )
    agent.run("x")
    request: GenerationRequest = backend.requests[0]
    assert (request.temperature, request.top_p, request.max_tokens) == (0.7, 0.9, 99)
    assert request.seed is not None
    assert request.constraint == JsonSchemaConstraint(json_schema=agent.tool_format.grammar_schema())


@pytest.mark.parametrize("settings", [{"temperature": -0.1}, {"top_p": 0.0}, {"top_p": 1.5}, {"max_step_tokens": 0}])
def test_sampling_settings_that_cannot_work_are_refused(settings):
    with pytest.raises(ValueError):
        SamplingSettings(**settings)


def test_the_same_agent_can_run_twice_independently():
    backend = ScriptedBackend([calc("1 + 1"), final("2"), final("again")])
    agent = Agent(backend, tools=[calculator], examples=[])
    first, second = agent.run("a"), agent.run("b")
    assert (first.output, second.output) == ("2", "again")
    assert [m.role for m in second.messages] == ["system", "user", "assistant"]
    assert backend.requests[2].messages[-1].content == "b"


def test_partial_usage_counts_rejected_replies():
    from agentkit import InvalidStepError

    backend = ScriptedBackend(["not json"] * 3)
    with pytest.raises(InvalidStepError) as info:
        Agent(backend, examples=[], max_invalid_retries=2).run("x")
    assert info.value.partial.usage.model_calls == 3


def test_history_continues_an_earlier_conversation():
    from agentkit.testing import ScriptedBackend as Scripted

    backend = Scripted([
        {"calls": [{"name": "calculator", "arguments": {"expression": "17 * 23"}}]},
        {"final_answer": "391"},
        {"final_answer": "391 plus 9 is 400"},
    ])
    from agentkit import Agent as A
    from agentkit.tools import calculator as calc

    agent = A(backend, tools=[calc], examples=[])
    first = agent.run("What is 17 * 23?")
    second = agent.run("Add 9 to that.", history=first.messages)
    assert second.output == "391 plus 9 is 400"
    seen = [m.content for m in backend.requests[-1].messages]
    assert seen[1] == "What is 17 * 23?" and "391" in seen[3] and seen[-1] == "Add 9 to that."
    assert [m.role for m in backend.requests[-1].messages].count("system") == 1
