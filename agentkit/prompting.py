"""Turn an agent's configuration into messages: the system prompt, few-shot turns, observations."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from agentkit.prompts import render
from agentkit.registry import ToolRegistry
from agentkit.steps import ParsedStep
from agentkit.types import Message, Observation, ToolCall

if TYPE_CHECKING:
    from agentkit.formats import ToolFormat


class ExampleCall(BaseModel):
    """One tool call inside a few-shot example, with the result the tool gave."""

    name: str
    arguments: dict[str, Any]
    result: str


class Example(BaseModel):
    """A worked example shown to the model before the task: a task, its tool calls, the answer.

    Small models copy examples closely, so make them typical of the real tasks but different in content.

    Example:
        >>> Example(task="What is 2 + 3?", thought="I add with the calculator.",
        ...         calls=[ExampleCall(name="calculator", arguments={"expression": "2 + 3"}, result="5")],
        ...         answer="2 + 3 = 5").task
        'What is 2 + 3?'
    """

    task: str
    calls: list[ExampleCall] = Field(default_factory=list)
    thought: str | None = None
    answer_thought: str | None = None
    answer: Any


# Used when an agent is given no examples of its own. Small models copy examples closely, so these
# show the two decisions of a first step: answer at once when no tool fits, and make one call per
# item asked for. The tool is fictional on purpose: the grammar stops the model from ever calling it.
# Measured on SmolLM2-135M with BFCL (benchmarks/RESULTS.md): one single-call example made it call a
# tool for 9 of 10 questions no tool could answer; these two took that to 5 of 10 at the same
# accuracy on the questions that need calls.
DEFAULT_EXAMPLES = [
    Example(task="Write a short poem about the sea.", answer="No tool fits this task. The sea is wide, the sea is blue."),
    Example(
        task="What is the weather in Paris and in Lima?",
        calls=[
            ExampleCall(name="get_weather", arguments={"city": "Paris"}, result="18°C, sun"),
            ExampleCall(name="get_weather", arguments={"city": "Lima"}, result="22°C, cloudy"),
        ],
        answer="Paris: 18°C, sun. Lima: 22°C, cloudy.",
    ),
]


def system_prompt(instructions: str, registry: ToolRegistry, step_format: ToolFormat, *, native_tools: bool = False) -> str:
    """The system prompt: instructions, the step format and the tool list.

    With `native_tools` the model's own chat template renders the tools and its call syntax (the
    engine passes them as `tools=`), so the prompt keeps to the instructions and the answer rule.
    """
    if native_tools:
        return render("system_native.jinja", instructions=instructions.strip(), answer_shape=answer_shape(step_format))
    tools = []
    for t in registry:
        properties = t.parameters.get("properties", {})
        required = set(t.parameters.get("required", []))
        arguments = [
            {
                "name": name,
                "type": _type_label(schema, t.parameters.get("$defs", {})),
                "required": name in required,
                "description": schema.get("description", ""),
            }
            for name, schema in properties.items()
        ]
        signature = ", ".join(f"{a['name']}: {a['type']}{'' if a['required'] else ' = optional'}" for a in arguments)
        # Per-tool examples in the agentkit format keep the `{"name", "arguments"}` shape its prompt was tuned on.
        examples = [
            step_format.render(ParsedStep(thought=None, calls=[ToolCall(id="example", name=t.name, arguments=e)]))
            if step_format.name != "agentkit" else json.dumps({"name": t.name, "arguments": e}, ensure_ascii=False)
            for e in t.examples
        ]
        tools.append(
            {"name": t.name, "signature": signature, "description": t.description, "arguments": arguments, "examples": examples}
        )
    return render(
        "system.jinja",
        instructions=instructions.strip(),
        tools=tools,
        call_shape=call_shape(step_format),
        answer_shape=answer_shape(step_format),
        json_steps=step_format.name == "agentkit",
    )


def call_shape(step_format: ToolFormat) -> str:
    """How a step with tool calls looks in `step_format`, for prompts."""
    return step_format.call_shape()


def answer_shape(step_format: ToolFormat) -> str:
    """How a final answer looks in `step_format`, for prompts."""
    return step_format.answer_shape()


def example_messages(examples: list[Example], step_format: ToolFormat) -> list[Message]:
    """Render few-shot examples as real conversation turns, in exactly the format the grammar enforces."""
    messages: list[Message] = []
    for n, example in enumerate(examples):
        messages.append(Message(role="user", content=example.task))
        if example.calls:
            calls = [ToolCall(id=f"example_{n}_{i}", name=c.name, arguments=c.arguments) for i, c in enumerate(example.calls)]
            messages.append(Message(role="assistant", content=step_format.render(ParsedStep(thought=example.thought, calls=calls))))
            for call, c in zip(calls, example.calls):
                messages.append(observation_message(Observation(call_id=call.id, name=call.name, content=c.result)))
        final = ParsedStep(thought=example.answer_thought or example.thought, calls=[], final_answer=example.answer, is_final=True)
        messages.append(Message(role="assistant", content=step_format.render(final)))
    return messages


def observation_message(observation: Observation, *, images: bool = True) -> Message:
    """The tool-role message that carries one observation back to the model.

    With `images=False` (a model that cannot see) a returned image stays only as its text stand-in.
    """
    content = render("observation.jinja", name=observation.name, content=observation.content)
    return Message(role="tool", name=observation.name, content=content, images=tuple(observation.images) if images else ())


def invalid_step_message(error: str, step_format: ToolFormat) -> Message:
    """Feedback for a reply that did not parse, so the model can correct itself."""
    content = render(
        "invalid_step.jinja", error=error, call_shape=call_shape(step_format), answer_shape=answer_shape(step_format),
        json_steps=step_format.name == "agentkit",
    )
    return Message(role="user", content=content)


def _type_label(schema: dict[str, Any], defs: dict[str, Any]) -> str:
    """A short, readable type for the prompt: string, number, one of "km"|"mi", list of string..."""
    if "$ref" in schema:
        target = defs.get(schema["$ref"].split("/")[-1], {})
        return _type_label(target, defs)
    if "enum" in schema:
        return " | ".join(json.dumps(v, ensure_ascii=False) for v in schema["enum"])
    if "const" in schema:
        return json.dumps(schema["const"], ensure_ascii=False)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " | ".join(_type_label(s, defs) for s in schema[key])
    kind = schema.get("type")
    if kind == "array":
        return f"list of {_type_label(schema.get('items', {}), defs)}"
    if kind == "object":
        props = schema.get("properties")
        if props:
            inner = ", ".join(f"{k}: {_type_label(v, defs)}" for k, v in props.items())
            return "{" + inner + "}"
        extra = schema.get("additionalProperties")
        return f"object of {_type_label(extra, defs)}" if isinstance(extra, dict) else "object"
    if isinstance(kind, list):
        return " | ".join(kind)
    return kind or "any"
