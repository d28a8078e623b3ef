"""Carrying out an agent's step checks on one step: what they may see, what they discard, how the history shows it.

The agent loop (`agentkit.agent`) calls `StepChecking.run` on every step with calls; the checks
themselves live in `agentkit.checks`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

from agentkit.backend import Backend, Generation, GenerationRequest
from agentkit.checks import CheckContext, StepCheck
from agentkit.checks.answering import discard_calls, first_time, unrun_note
from agentkit.formats import ToolFormat
from agentkit.registry import ToolRegistry
from agentkit.steps import ParsedStep
from agentkit.trace import TraceWriter
from agentkit.types import DiscardedCall, Message, Step, Usage


@dataclass
class CheckedStep:
    """A parsed step as the step checks leave it: the step, the generation it now comes from, its usage, the discards."""

    step: ParsedStep
    generation: Generation
    usage: Usage
    discarded: list[DiscardedCall] = field(default_factory=list)


@dataclass(frozen=True)
class StepChecking:
    """An agent's step checks, and what carrying them out needs.

    answer_format: the agent's format that can only answer (asked when no call of a step is left).
    prefix_length: how many messages (system prompt, few-shot examples) come before the conversation.

    Example:
        >>> from agentkit.formats import make_tool_format
        >>> from agentkit.testing import ScriptedBackend
        >>> from agentkit.types import DiscardedCall, ToolCall
        >>> registry = ToolRegistry([])
        >>> checking = StepChecking((), ScriptedBackend([]), registry, make_tool_format("hermes", registry), None, 1)
        >>> guess = DiscardedCall(call=ToolCall(id="1", name="f", arguments={}), reason="r", check="c", call_again=True)
        >>> print(checking.shown(ParsedStep(thought=None, calls=[]), [guess]))
        <tool_call>
        {"name": "f", "arguments": {}}
        </tool_call>
    """

    checks: tuple[StepCheck, ...]
    backend: Backend
    registry: ToolRegistry
    tool_format: ToolFormat
    answer_format: ToolFormat | None
    prefix_length: int

    def shown(self, step: ParsedStep | Step, discarded: Sequence[DiscardedCall]) -> str:
        """A step's calls as the history shows them: the calls run, then those discarded with `call_again` (their notes follow)."""
        calls = [*step.calls, *(d.call for d in discarded if d.call_again)]
        return self.tool_format.render(ParsedStep(thought=step.thought, calls=calls))

    def context(self, request: GenerationRequest, index: int, messages: list[Message], steps: Sequence[Step]) -> CheckContext:
        """What the checks of step `index` may look at."""
        # A discarded guess and the note about it are not where a value may come from: "finance" in them grounds nothing.
        guesses = {self.shown(s, s.discarded) for s in steps if any(d.call_again for d in s.discarded)}
        guesses |= {unrun_note(d.call.name, d.reason, answer=False).content for s in steps for d in s.discarded if d.call_again}
        return CheckContext(
            backend=self.backend, request=request, step_index=index,
            task=next((m.content for m in reversed(messages) if m.role == "user"), ""),
            conversation="\n".join(m.content for m in messages[self.prefix_length :] if m.content not in guesses),
            registry=self.registry, tool_format=self.tool_format,
        )

    async def run(
        self, checked: CheckedStep, context: CheckContext, steps: Sequence[Step], trace: TraceWriter | None, *, attempt: int
    ) -> None:
        """Run the checks in order on `checked`'s step, carrying out their discards (asking for an answer when no call is left).

        `steps` are the run's earlier steps: a call they already discarded with `call_again` runs
        when the model writes it again (`first_time`).
        """
        before = [(d.call.name, d.call.arguments) for s in steps for d in s.discarded if d.call_again]
        for check in self.checks:
            if not checked.step.calls:
                return  # an answer, or a step answered after its calls were discarded: nothing to check
            extend = getattr(check, "extend", None)
            if extend is not None:
                await self._extend(extend, checked, context, trace, check.name)
            verdict = [d for d in await check(context, checked.step) if d.call in checked.step.calls and first_time(d, before)]
            checked.step, done, answer = await discard_calls(
                self.backend, context.request, checked.step, verdict, self.answer_format, step_index=context.step_index
            )
            if answer is not None:
                if trace:
                    trace_model_call(trace, context.step_index, attempt, answer, error=None if done else "not a valid answer")
                checked.usage = checked.usage + Usage.of(answer)
                if done:
                    checked.generation = answer  # the step is now this answer
            checked.discarded += [DiscardedCall(call=d.call, reason=d.reason, check=check.name, call_again=d.call_again) for d in done]
            for reason, same in groupby(done, key=lambda d: d.reason):
                if trace:
                    calls = [d.call.model_dump(mode="json") for d in same]
                    trace.event("calls_dropped", step=context.step_index, calls=calls, reason=reason, check=check.name)


    async def _extend(self, extend: Any, checked: CheckedStep, context: CheckContext, trace: TraceWriter | None, name: str) -> None:
        """Let a check add calls (`extend`): the step becomes its longer reply, parsed again."""
        extension = await extend(context, checked.step, checked.generation)
        checked.usage = checked.usage + extension.usage
        if extension.reply is None:
            return
        before = len(checked.step.calls)
        checked.generation = extension.reply
        checked.step = self.tool_format.parse(extension.reply.text, step_index=context.step_index)
        if trace:
            calls = [c.model_dump(mode="json") for c in checked.step.calls[before:]]
            trace.event("calls_added", step=context.step_index, calls=calls, check=name)


def trace_model_call(trace: TraceWriter, index: int, attempt: int, generation: Any, *, error: str | None) -> None:
    """Record one model call of a step (`model_call` event)."""
    trace.event(
        "model_call", step=index, attempt=attempt, output=generation.text, valid=error is None, error=error,
        prompt_tokens=generation.prompt_tokens, completion_tokens=generation.completion_tokens,
        seconds=generation.seconds, finish_reason=generation.finish_reason, details=generation.details,
    )
