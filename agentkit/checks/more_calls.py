"""More calls (`MoreCalls`): a step that stopped after some of the calls its task asks for is asked for one more.

Asked for "the factorial of 5, 10 and 15" or "the resistance for copper and for aluminium", a
tool-tuned model often makes the first call and stops (Qwen2.5-Coder-1.5B: 8 of BFCL's first 50
parallel tests). Made to write one more call after its own, the same model mostly writes the one it
left out (`math_pythagoras(a=5, b=12)` after `(a=3, b=4)` for "3 and 4, 5 and 12"); where nothing was
left out, it writes its call again, a result, or a call with values of its own (`method="midpoint"`
where the task said "trapezoidal"). So the step's reply is continued under a grammar that keeps it
as written and adds exactly one call in the same spelling, and that call is kept only when it calls
a tool the step already calls with a value from the conversation that no call of the step used:
the next of the values the task listed. Then it asks again, up to the format's `max_calls`.

Example:
    >>> from agentkit.tools import calculator
    >>> earlier = [ToolCall(id="1", name="calculator", arguments={"expression": "5 * 5"})]
    >>> more = ToolCall(id="2", name="calculator", arguments={"expression": "10 * 10"})
    >>> brings_new_value(more, earlier, calculator.parameters, "Square 5 and 10.")
    True
    >>> brings_new_value(earlier[0], earlier, calculator.parameters, "Square 5 and 10.")  # the same call again
    False
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from agentkit.backend import Generation, Scorer
from agentkit.checks.base import CheckContext, Discard, Extension, ScopedCheck
from agentkit.checks.grounding import chosen_values, numbers_in
from agentkit.formats import TextAnswerFormat
from agentkit.steps import ParsedStep, StepParseError
from agentkit.types import ToolCall, Usage


@dataclass(frozen=True, repr=False)
class MoreCalls(ScopedCheck):
    """After a step's calls, the model writes one more; kept when it calls the same tool with a new value from the conversation.

    Only for formats that can continue a reply with one more call (`hermes`, `llama3_json`,
    `pythonic`), on the local engines (`agentkit.backend.Scorer`), which decode under its grammar
    (a remote server may decode it freely). Costs one short constrained generation per step
    it looks at, plus one per call it adds.

    Example:
        >>> MoreCalls(first_step_only=True)
        MoreCalls(first_step_only=True)
    """

    name: ClassVar[str] = "more_calls"

    async def check(self, context: CheckContext, step: ParsedStep) -> list[Discard]:
        return []  # it discards nothing: it adds (`extend`)

    async def extend(self, context: CheckContext, step: ParsedStep, reply: Generation) -> Extension:
        """`reply` continued with the calls the model adds that bring a new value, and the usage of asking."""
        fmt = context.tool_format
        grammars = isinstance(context.backend, Scorer)  # a local engine: it decodes under the grammar (a server may not)
        if not (grammars and self.applies(context) and step.calls and isinstance(fmt, TextAnswerFormat)):
            return Extension(reply=None, usage=Usage())
        usage, kept, calls = Usage(), None, list(step.calls)
        while len(calls) < fmt.limits.max_calls:
            constraint = fmt.one_more_call_constraint((kept or reply).text)
            if constraint is None:
                break
            budget = (kept or reply).completion_tokens + context.request.max_tokens  # the reply is written again, then a call
            generation = await context.backend.agenerate(
                context.request.model_copy(update={"constraint": constraint, "max_tokens": budget})
            )
            usage = usage + Usage.of(generation)
            if generation.finish_reason == "length":
                break
            try:
                parsed = fmt.parse(generation.text, step_index=context.step_index)
            except StepParseError:
                break
            if len(parsed.calls) != len(calls) + 1:  # the same call again, dropped as a duplicate
                break
            more = parsed.calls[-1]
            if more.name not in context.registry or not brings_new_value(
                more, calls, context.registry.get(more.name).parameters, context.conversation
            ):
                break
            kept, calls = generation, parsed.calls
        return Extension(reply=kept, usage=usage)


def brings_new_value(call: ToolCall, earlier: Sequence[ToolCall], parameters: dict[str, Any], conversation: str) -> bool:
    """Whether `call` calls a tool of `earlier` with a value of the conversation that no earlier call has.

    A value counts when it is a number of the conversation (or its percentage), a string the
    conversation holds whole, or a string holding such a number (`"10 * 10"`); it is not new when an
    earlier call has it (of any tool: the task gave it to that call), also inside a longer string
    (`1` in `"2x - 1"`). Booleans and a
    schema's fixed choices (`enum`) never count.
    """
    if not any(c.name == call.name for c in earlier):
        return False
    text = conversation.lower()
    numbers = numbers_in(text)
    # Used by any earlier call: "Miami" of a sightseeing call is not a new city for the supermarket search.
    used = [v for c in earlier for v in chosen_values(c, parameters)]
    used_strings = [str(v).lower().strip() for v in used if isinstance(v, str)]
    used_numbers = [float(v) for v in used if isinstance(v, (int, float))]
    used_numbers += [n for s in used_strings for n in numbers_in(s)]
    for value in chosen_values(call, parameters):
        if isinstance(value, (int, float)):
            if not any(math.isclose(float(value), u, rel_tol=1e-9) for u in used_numbers) and _said_number(float(value), numbers):
                return True
        elif isinstance(value, str):
            needle = value.lower().strip()
            if any(needle in u or u in needle for u in used_strings):
                continue
            if _said_whole(needle, text):
                return True
            # A composed string (an expression, a query) brings the conversation's numbers it holds.
            inner = numbers_in(needle)
            if any(_said_number(n, numbers) and not any(math.isclose(n, u, rel_tol=1e-9) for u in used_numbers) for n in inner):
                return True
    return False


def _said_number(value: float, numbers: list[float]) -> bool:
    return any(math.isclose(abs(value), n * scale, rel_tol=1e-9) for n in numbers for scale in (1.0, 0.01, 100.0))


def _said_whole(needle: str, text: str) -> bool:
    return bool(needle) and re.search(rf"(?<!\w){re.escape(needle)}(?!\w)", text) is not None
