"""Discarding a step's calls that a step check condemns, and asking for an answer when none is left.

Used by the agent for every step check (`agentkit.checks`).
"""

from __future__ import annotations

from typing import Any

from agentkit.backend import Generation, GenerationRequest
from agentkit.checks.base import Discard
from agentkit.formats import FORMATS, TextAnswerFormat, ToolFormat, make_tool_format
from agentkit.prompts import render
from agentkit.registry import ToolRegistry
from agentkit.steps import ParsedStep, StepParseError
from agentkit.types import (
    Message,
    ToolCall,  # noqa: F401  # the docstring examples use it
)


async def discard_calls(
    backend: Any, request: GenerationRequest, step: ParsedStep, discards: list[Discard],
    answer_format: ToolFormat | None, *, step_index: int,
) -> tuple[ParsedStep, list[Discard], Generation | None]:
    """`step` without the discarded calls, the discards carried out, and the answer generation if one was needed.

    When no call is left, the model is asked for an answer under `answer_format` (the step format
    that can only answer), with its calls in the conversation followed by a note that each was not
    run and why (the discard's reason): asked the bare request again, a tool-tuned model writes the
    same call as text (Qwen2.5-Coder: a ```json or ```python block); told the call was not run, it
    answers. If that reply is not a valid answer (cut off), or there is no `answer_format`, the step
    stays as it was: a check never loses a step.

    Example:
        >>> import asyncio
        >>> from agentkit.testing import ScriptedBackend
        >>> step = ParsedStep(thought=None, calls=[ToolCall(id="1", name="a", arguments={}), ToolCall(id="2", name="b", arguments={})])
        >>> request = GenerationRequest(messages=[])
        >>> discards = [Discard(call=step.calls[1], reason="b is off today")]
        >>> kept, done, _ = asyncio.run(discard_calls(ScriptedBackend([]), request, step, discards, None, step_index=1))
        >>> [c.name for c in kept.calls], [d.call.name for d in done]
        (['a'], ['b'])
    """
    doomed = [d.call for d in discards]
    if not doomed:
        return step, [], None
    kept = [c for c in step.calls if c not in doomed]
    if kept or all(d.call_again for d in discards):
        # The run goes on: the calls left run, and the model reads why the others did not (`unrun_note`).
        return ParsedStep(thought=step.thought, calls=kept), discards, None
    if answer_format is None:
        return step, [], None
    notes = [unrun_note(d.call.name, d.reason, answer=True) for d in discards]
    messages = [*request.messages, Message(role="assistant", content=answer_format.render(step)), *notes]
    generation = await backend.agenerate(request.model_copy(update={"messages": messages, "constraint": answer_format.constraint()}))
    if generation.finish_reason == "length":
        return step, [], generation
    try:
        answer = answer_format.parse(generation.text, step_index=step_index)
    except StepParseError:
        return step, [], generation
    return answer, discards, generation


def first_time(discard: Discard, discarded_before: list[tuple[str, dict[str, Any]]]) -> Discard | None:
    """`discard`, or None when it is a `call_again` discard of a call in `discarded_before` (name, arguments).

    Told once why its call did not run, a model that writes the same call again insists: the call
    runs (its result settles it), rather than the model being stopped or asked again.

    Example:
        >>> again = Discard(call=ToolCall(id="2", name="f", arguments={"x": "e.g."}), reason="an example", call_again=True)
        >>> first_time(again, []) is again, first_time(again, [("f", {"x": "e.g."})])
        (True, None)
    """
    if discard.call_again and (discard.call.name, discard.call.arguments) in discarded_before:
        return None
    return discard


def unrun_note(name: str, reason: str, *, answer: bool) -> Message:
    """The tool-role message that tells the model its call `name` was not run and why.

    Example:
        >>> unrun_note("department_info", "look up the department first", answer=False).content
        '[department_info was not run: look up the department first.]'
    """
    return Message(role="tool", name=name, content=render("unrun_call.jinja", name=name, reason=reason, answer=answer))


def answer_only_format(tool_format: ToolFormat, output_type: Any) -> ToolFormat | None:
    """`tool_format` that can only answer (None for a format agentkit does not ship).

    A native format keeps its tools so that its answer still may not begin like a call: asked for
    an answer, Qwen2.5-Coder writes its dropped call again as a ```json fence otherwise.

    Example:
        >>> from agentkit.formats import make_tool_format
        >>> answer_only_format(make_tool_format("agentkit", ToolRegistry([])), str).name
        'agentkit'
    """
    if isinstance(tool_format, TextAnswerFormat):
        return type(tool_format)(tool_format.registry, output_type=output_type, limits=tool_format.limits, answer_only=True)
    if tool_format.name in FORMATS:
        return make_tool_format(tool_format.name, ToolRegistry([]), output_type=output_type, limits=tool_format.limits)
    return None


def calls_only_format(tool_format: ToolFormat, output_type: Any) -> ToolFormat | None:
    """`tool_format` whose steps must call a tool (None where the format has no such variant: `agentkit`).

    Example:
        >>> from agentkit.formats import make_tool_format
        >>> from agentkit.tools import calculator
        >>> calls_only_format(make_tool_format("hermes", ToolRegistry([calculator])), str).calls_only
        True
    """
    if isinstance(tool_format, TextAnswerFormat):
        return type(tool_format)(tool_format.registry, output_type=output_type, limits=tool_format.limits, calls_only=True)
    return None
