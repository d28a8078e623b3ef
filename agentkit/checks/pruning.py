"""Pruned calls (`PruneCalls`): the extra tool calls of a step that the model itself finds unlikely are not run.

Greedy decoding decides "one more call" on a single token (`,` rather than `]`), before the model
has written the call; a small model then often invents one (a city from a few-shot example, the
same tool with made-up values). With the whole step in hand the model can be asked the real
question: is the step with its last call more likely than the step without it? The comparison is
between two complete replies, end of turn included, so a second call the task asks for (copied
confidently) survives and an invented one, whose every token was a guess, does not.

Example:
    >>> import asyncio
    >>> from agentkit.backend import GenerationRequest
    >>> from agentkit.testing import ScriptedBackend
    >>> from agentkit.formats import make_tool_format
    >>> from agentkit.registry import ToolRegistry
    >>> from agentkit.steps import ParsedStep
    >>> step = ParsedStep(thought=None, calls=[])   # nothing to prune, and a backend that cannot score
    >>> fmt = make_tool_format("agentkit", ToolRegistry([]))
    >>> asyncio.run(prune_calls(ScriptedBackend([]), GenerationRequest(messages=[]), step, fmt))[1]
    []

The check never discards a step's first call, so it never leaves a step without calls (and the model
is never asked again). On by default for the `agentkit` format only (`DEFAULT_STEP_CHECKS`): on
SmolLM2-135M it took BFCL `multiple` from 30% to 50%, but on the tool-tuned Qwen2.5-Coder-1.5B it
dropped the correct second call of "the weather in Oslo and in Lima" (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, ClassVar

from agentkit.backend import GenerationRequest, Scorer
from agentkit.checks.base import CheckContext, Discard, ScopedCheck
from agentkit.formats import ToolFormat
from agentkit.steps import ParsedStep
from agentkit.types import ToolCall


async def prune_calls(
    backend: Any, request: GenerationRequest, step: ParsedStep, step_format: ToolFormat
) -> tuple[ParsedStep, list[ToolCall]]:
    """`step` without the trailing calls the model scores below stopping before them, and the dropped calls.

    Steps with fewer than two calls, and backends that cannot score (`Scorer`), are left as they are.
    """
    if len(step.calls) < 2 or not isinstance(backend, Scorer):
        return step, []
    kept = list(step.calls)
    best = None
    while len(kept) > 1:
        longer = step_format.render(ParsedStep(thought=step.thought, calls=kept))
        shorter = step_format.render(ParsedStep(thought=step.thought, calls=kept[:-1]))
        if best is None:
            best, without = await asyncio.to_thread(backend.score, request, [longer, shorter])
        else:
            (without,) = await asyncio.to_thread(backend.score, request, [shorter])
        if without <= best:
            break
        kept, best = kept[:-1], without
    dropped = step.calls[len(kept):]
    if not dropped:
        return step, []
    return ParsedStep(thought=step.thought, calls=kept), dropped


@dataclass(frozen=True, repr=False)
class PruneCalls(ScopedCheck):
    """A step's last call is discarded while the model scores the step without it as more likely.

    The score is the whole reply's log-probability, end of turn included, on backends that can score
    replies (`agentkit.backend.Scorer`: the local engine); on others it does nothing. Greedy decoding
    commits to "one more call" on a single token; this asks the model about the whole call it went
    on to write. Costs one forward pass over each compared reply (the prompt from the prefix cache).

    Example:
        >>> PruneCalls(formats=("agentkit",))
        PruneCalls(formats=('agentkit',))
    """

    name: ClassVar[str] = "prune_calls"
    reason: ClassVar[str] = "it is less likely than stopping"

    async def check(self, context: CheckContext, step: ParsedStep) -> list[Discard]:
        """The trailing calls of `step` the model scores below stopping before them."""
        _, dropped = await prune_calls(context.backend, context.request, step, context.tool_format)
        return [Discard(call=c, reason=self.reason) for c in dropped]
