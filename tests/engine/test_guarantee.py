"""The core guarantee: under the step grammar even a random-weight model writes only valid steps.

A 2-layer Llama with random weights and the real SmolLM2 tokenizer samples at temperature 1 (close
to uniform over whatever the mask allows) through the full Agent loop, over 100 seeds and six tools
with enums, nested models, lists, numbers, optional fields, maps and unicode strings.
"""

from __future__ import annotations

import enum
import json
import re
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from agentkit import Agent, MaxStepsExceeded, SamplingSettings, StepLimits, tool
from agentkit.tools import calculator


class Cabin(enum.Enum):
    ECONOMY = "economy"
    BUSINESS = "business"


class Passenger(BaseModel):
    name: str
    age: int
    email: str | None = None


class Seat(BaseModel):
    row: int
    letter: Literal["A", "B", "C", "D"]


@tool
def convert(amount: float, unit: Literal["km", "mi"]) -> float:
    """Convert a distance to the other unit.

    Args:
        amount: the distance.
        unit: the unit of `amount`.
    """
    return amount / 1.609344 if unit == "km" else amount * 1.609344


@tool
def book_flight(passenger: Passenger, seats: list[Seat], cabin: Cabin = Cabin.ECONOMY) -> str:
    """Book a flight.

    Args:
        passenger: who flies.
        seats: the seats to reserve.
        cabin: the cabin class.
    """
    return f"booked {len(seats)} seats for {passenger.name} in {cabin.value}"


@tool
def search(query: str, limit: int = 5, tags: list[str] | None = None) -> list[str]:
    """Search the notes.

    Args:
        query: words to look for.
        limit: most results.
        tags: only notes with these tags.
    """
    return [query][:limit]


@tool
def translate(text: str, target: Literal["中文", "العربية", "русский", "हिन्दी", "emoji 🎉"]) -> str:
    """Translate a text.

    Args:
        text: the text, in any language.
        target: the language to translate into.
    """
    return f"{target}: {text}"


@tool
def set_flags(flags: dict[str, bool], note: str = "") -> int:
    """Set feature flags.

    Args:
        flags: flag name to on/off.
        note: why.
    """
    return len(flags)


class Summary(BaseModel):
    title: str
    score: float = Field(ge=0, le=10)
    tags: list[str]


TOOLS = [convert, book_flight, search, translate, set_flags, calculator]
# Tighter bounds than the defaults keep a random model's steps short; the guarantee holds for any bounds.
LIMITS = StepLimits(thought_chars=30, max_calls=2, string_chars=24, answer_chars=40, array_items=3, key_chars=12)


def _check_run(agent: Agent, task: str) -> list:
    """Run `agent` and check every step it wrote was valid, whatever its tool format."""
    try:
        steps = agent.run(task).steps
    except MaxStepsExceeded as exc:  # a random model may never answer; its steps must still be valid
        steps = exc.partial.steps
    for step in steps:
        assert step.rejected_outputs == [], f"invalid step was produced: {step.rejected_outputs}"
        if agent.tool_format.name == "agentkit":
            json.loads(step.raw_output)  # every step is one JSON document
        for observation in step.observations:
            # The grammar admits only known tools with schema-valid arguments: the registry must agree.
            assert observation.error_type not in {"unknown_tool", "invalid_arguments"}, observation.content
    return steps


@pytest.fixture(scope="module", params=["torch", "llama.cpp"])
def random_engine(request, smollm2_tokenizer, make_tiny_llama, make_tiny_gguf):
    """The same random weights on each engine: the guarantee is the grammar's, whatever runs the model."""
    from agentkit.engine import GGUFEngine, LocalEngine

    model = make_tiny_llama(smollm2_tokenizer, seed=1234)
    if request.param == "torch":
        return LocalEngine.from_model(model, smollm2_tokenizer)
    request.getfixturevalue("require_llama_cpp")
    return GGUFEngine(make_tiny_gguf(model, "guarantee"), tokenizer=smollm2_tokenizer)


def test_random_weights_give_only_valid_steps_over_100_seeds(random_engine):
    calls_seen: set[str] = set()
    steps_checked = 0
    finals = 0
    for seed in range(100):
        agent = Agent(random_engine, tools=TOOLS, limits=LIMITS, max_steps=2, sampling=SamplingSettings(temperature=1.0, seed=seed, max_step_tokens=1500))
        steps = _check_run(agent, "Plan a trip to Zürich, 東京 and القاهرة 🚆")
        steps_checked += len(steps)
        finals += sum(s.is_final for s in steps)
        calls_seen.update(c.name for s in steps for c in s.calls)
    assert steps_checked >= 100
    # The random model explored the union: several tools were called and some runs ended with an answer.
    assert len(calls_seen) >= 4, calls_seen
    assert finals > 0
    # One tool set: its step schema (and the answer-only one asked when every call was a guess,
    # `agentkit.checks.GroundedCalls`) compiled once each however many agents and seeds used them.
    assert random_engine.grammars.compilations <= 2


@pytest.mark.parametrize("tool_format", ["llama3_json", "pythonic", "hermes"])
def test_random_weights_give_only_valid_steps_in_every_tool_format(random_engine, tool_format):
    """The same guarantee for the native syntaxes, through the agent loop (calls or a text answer)..."""
    for seed in range(15):
        agent = Agent(
            random_engine, tools=TOOLS, limits=LIMITS, max_steps=2, sampling=SamplingSettings(temperature=1.0, seed=seed, max_step_tokens=1500),
            tool_format=tool_format,
        )
        _check_run(agent, "Plan a trip to Zürich, 東京 and القاهرة 🚆")


@pytest.mark.parametrize("tool_format", ["llama3_json", "pythonic", "hermes"])
def test_random_weights_write_only_valid_calls_in_every_tool_format(random_engine, tool_format):
    """...and for the calls themselves. A near-uniform model rarely picks the one opening token of a call
    over the thousands that start a text answer, so here the grammar's call branch is decoded alone."""
    from agentkit import GenerationRequest, LarkConstraint, Message
    from agentkit.formats import make_tool_format
    from agentkit.registry import ToolRegistry

    registry = ToolRegistry(TOOLS)
    fmt = make_tool_format(tool_format, registry, limits=LIMITS)
    calls_only = re.sub(r"^start: .*$", "start: calls", fmt.grammar, flags=re.MULTILINE)
    calls_seen: set[str] = set()
    for seed in range(40):
        request = GenerationRequest(
            messages=[Message(role="user", content="Plan a trip to Zürich, 東京 and القاهرة 🚆")], constraint=LarkConstraint(grammar=calls_only),
            max_tokens=1500, temperature=1.0, seed=seed,
        )
        generation = random_engine.generate(request)
        assert generation.finish_reason == "stop"
        step = fmt.parse(generation.text, step_index=1)
        assert step.calls and len(step.calls) <= LIMITS.max_calls
        for call in step.calls:
            registry.get(call.name).validate_arguments(call.arguments)  # raises if the grammar let a bad value through
            calls_seen.add(call.name)
    assert len(calls_seen) >= 4, calls_seen


@pytest.mark.parametrize("tool_format", ["llama3_json", "pythonic", "hermes"])
def test_random_weights_continue_a_reply_with_one_more_valid_call(random_engine, tool_format):
    """`MoreCalls` asks for one more call after a reply's own: the reply stays as written, the call added is valid."""
    from agentkit import GenerationRequest, LarkConstraint, Message
    from agentkit.formats import make_tool_format
    from agentkit.registry import ToolRegistry

    registry = ToolRegistry(TOOLS)
    fmt = make_tool_format(tool_format, registry, limits=LIMITS)
    calls_only = re.sub(r"^start: .*$", "start: calls", fmt.grammar, flags=re.MULTILINE)
    message = [Message(role="user", content="Plan a trip to Zürich, 東京 and القاهرة 🚆")]
    for seed in range(8):
        first = random_engine.generate(GenerationRequest(
            messages=message, constraint=LarkConstraint(grammar=calls_only), max_tokens=1500, temperature=1.0, seed=seed,
        ))
        calls = fmt.parse(first.text, step_index=1).calls
        constraint = fmt.one_more_call_constraint(first.text)
        assert constraint is not None
        more = random_engine.generate(GenerationRequest(messages=message, constraint=constraint, max_tokens=3000, temperature=1.0, seed=seed))
        assert more.finish_reason == "stop"
        assert more.text.startswith(first.text.rstrip().removesuffix("]").removesuffix("```").rstrip("\n"))
        continued = fmt.parse(more.text, step_index=1).calls
        assert continued[: len(calls)] == calls and len(continued) in (len(calls), len(calls) + 1)  # a duplicate is dropped
        for call in continued:
            registry.get(call.name).validate_arguments(call.arguments)


def test_random_weights_with_structured_output_type(random_engine):
    for seed in range(20):
        agent = Agent(
            random_engine, tools=TOOLS, output_type=Summary, limits=LIMITS, max_steps=2,
            sampling=SamplingSettings(temperature=1.0, seed=seed, max_step_tokens=1500),
        )
        for step in _check_run(agent, "Summarise the trip"):
            if step.is_final:
                assert isinstance(step.output, Summary)
                assert 0 <= step.output.score <= 10


def test_random_weights_without_grammar_do_not_produce_steps(random_engine):
    """The control: the same model unconstrained writes text that is not a step."""
    from agentkit import GenerationRequest, Message

    request = GenerationRequest(messages=[Message(role="user", content="Reply in JSON")], max_tokens=30, temperature=1.0, seed=0)
    text = random_engine.generate(request).text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
