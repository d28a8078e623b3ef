"""Dropping a step's calls that a step check condemns, and asking for an answer when none is left.

Shared by grounded calls (`agentkit._grounding`) and judged calls (`agentkit._judging`).
"""

from __future__ import annotations

from typing import Any

from agentkit.backend import Generation, GenerationRequest
from agentkit.formats import FORMATS, TextAnswerFormat, ToolFormat, make_tool_format
from agentkit.prompts import render
from agentkit.registry import ToolRegistry
from agentkit.steps import ParsedStep, StepParseError
from agentkit.types import Message, ToolCall


async def drop_calls(
    backend: Any, request: GenerationRequest, step: ParsedStep, doomed: list[ToolCall],
    answer_format: ToolFormat | None, *, reason: str, step_index: int,
) -> tuple[ParsedStep, list[ToolCall], Generation | None]:
    """`step` without the `doomed` calls, the calls dropped, and the answer generation if one was needed.

    When no call is left, the model is asked for an answer under `answer_format` (the step format
    that can only answer), with its calls in the conversation followed by a note that each was not
    run and why (`reason`): asked the bare request again, a tool-tuned model writes the same call as
    text (Qwen2.5-Coder: a ```json or ```python block); told the call was not run, it answers. If that
    reply is not a valid answer (cut off), or there is no `answer_format`, the step stays as it was:
    a check never loses a step.

    Example:
        >>> import asyncio
        >>> from agentkit.testing import ScriptedBackend
        >>> step = ParsedStep(thought=None, calls=[ToolCall(id="1", name="a", arguments={}), ToolCall(id="2", name="b", arguments={})])
        >>> request = GenerationRequest(messages=[])
        >>> kept, dropped, _ = asyncio.run(drop_calls(ScriptedBackend([]), request, step, step.calls[1:], None, reason="r", step_index=1))
        >>> [c.name for c in kept.calls], [c.name for c in dropped]
        (['a'], ['b'])
    """
    if not doomed:
        return step, [], None
    kept = [c for c in step.calls if c not in doomed]
    if kept:
        return ParsedStep(thought=step.thought, calls=kept), doomed, None
    if answer_format is None:
        return step, [], None
    notes = [Message(role="tool", name=c.name, content=render("unrun_call.jinja", name=c.name, reason=reason)) for c in doomed]
    messages = [*request.messages, Message(role="assistant", content=answer_format.render(step)), *notes]
    generation = await backend.agenerate(request.model_copy(update={"messages": messages, "constraint": answer_format.constraint()}))
    if generation.finish_reason == "length":
        return step, [], generation
    try:
        answer = answer_format.parse(generation.text, step_index=step_index)
    except StepParseError:
        return step, [], generation
    return answer, doomed, generation


# Why a step check did not run a call, as the model is told it (`drop_calls`); keys are the trace's `reason`.
DROP_REASONS = {"ungrounded": "its values are not in the conversation", "unfit": "it does not fit the request"}


def answer_only_format(tool_format: ToolFormat, output_type: Any) -> ToolFormat | None:
    """`tool_format` that can only answer (None for a format agentkit does not ship).

    A native format keeps its tools so that its answer still may not begin like a call: asked for
    an answer, Qwen2.5-Coder writes its dropped call again as a ```json fence otherwise.
    """
    if isinstance(tool_format, TextAnswerFormat):
        return type(tool_format)(tool_format.registry, output_type=output_type, limits=tool_format.limits, answer_only=True)
    if tool_format.name in FORMATS:
        return make_tool_format(tool_format.name, ToolRegistry([]), output_type=output_type, limits=tool_format.limits)
    return None
