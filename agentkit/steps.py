"""What every tool format shares: a step as data (`ParsedStep`), the error a bad step raises, and the grammar's bounds.

Each tool format (`agentkit.formats`) turns the model's reply into a `ParsedStep`, either tool
calls or a final answer, or raises `StepParseError` with a message the model reads to fix its next
try. `StepLimits` bounds what a format's grammar lets the model write.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from agentkit.types import ToolCall


@dataclass(frozen=True)
class StepLimits:
    """Bounds the grammar puts on a step. Defaults suit small models; raise them for big ones.

    thought_chars: length of the optional reasoning field; 0 (the default) leaves it out. Small models
        do better without it (SmolLM2-135M invents results in its thoughts); turn it on for big ones.
    max_calls: tool calls allowed in one step.
    string_chars: default maxLength for tool-argument strings that set none.
    answer_chars: default maxLength for a string final answer (and strings inside `output_type`).
        The `hermes` format, whose answer is lines of prose that calls may follow, splits it: a
        first line of up to half of it and at most three more lines of a sixth each.
    array_items: default maxItems for arrays that set none.
    key_chars: length bound for the keys of maps (`dict[str, X]`).
    int_digits: integers that set no `minimum`/`maximum` get at most this many digits (a small model
        under a grammar otherwise writes 1000000... until the token limit). 18 keeps every int64
        up to 10**18 - 1.
    nonempty_strings: required string arguments get minLength 1 (an empty required string is
        almost always a small model giving up, not a real value).
    distinct_calls: identical calls (same tool, same arguments) in one step are made once. Under a
        grammar a small model tends to repeat its call until `max_calls`; turn this off for tools
        whose repeated call means something (e.g. `roll_die()` twice).
    prune_calls: a step's last call is dropped while the model finds the step without it more
        likely (its whole-reply log-probability, end of turn included), on backends that can score
        replies (`agentkit.backend.Scorer`: the local engine). Greedy decoding commits to "one more
        call" on a single token; this asks the model about the whole call it went on to write, which
        removes the invented extra calls small models add (see benchmarks/RESULTS.md, BFCL).
        None (the default) turns it on for the `agentkit` step format, the one for models without a
        tool format of their own, and off for the native formats of tool-tuned models: on
        Qwen2.5-Coder-1.5B it dropped the second call of "the weather in Oslo and in Lima".
    grounded_calls: a call with numbers of the model's own choosing none of whose values
        (numbers, also as percentages, or words; not booleans or enum choices) appears in the
        conversation (the task, earlier turns, tool results; not the system prompt or the few-shot
        examples) is dropped as a guess, and a step left without calls is asked again for an
        answer. Calls without such numbers are never judged. Small models call some tool for every
        task, inventing the values when none fits; turn this off when the model must work out
        every number itself (`get_forecast(days=7)` alone for "the weather next week"). None (the
        default): on for every format. On the tool-tuned reference models (Qwen2.5-Coder 0.5B and
        1.5B) it dropped none of their correct BFCL calls and changed no agent task, and it drops
        the invented calls their judgement lets through (benchmarks/RESULTS.md).
    judged_calls: each call of a run's first step is put to the model as a separate yes/no question
        ("Request: ... Function: ... Call: ... Does this call do what the request asks?"), on
        backends that can score replies; a call whose "no" outweighs its "yes" is not run, and a
        step left without calls is asked again for an answer. Tool-tuned models call a tool for
        almost every question, needed or not, yet judge such calls unfit when asked (benchmarks/
        RESULTS.md: Qwen2.5-Coder-1.5B on BFCL irrelevance and the agent tasks). Costs one short
        prompt per call of a first step. None (the default): on for native formats, off for the
        `agentkit` step format, whose small models judge no better than they choose.
    """

    thought_chars: int = 0
    max_calls: int = 4
    string_chars: int = 300
    answer_chars: int = 600
    array_items: int = 16
    key_chars: int = 40
    int_digits: int = 18
    nonempty_strings: bool = True
    distinct_calls: bool = True
    prune_calls: bool | None = None
    grounded_calls: bool | None = None
    judged_calls: bool | None = None

    def call_checks(self, format_name: str) -> tuple[bool, bool, bool]:
        """Whether `prune_calls`, `grounded_calls` and `judged_calls` apply to steps of the format called `format_name`.

        Example:
            >>> StepLimits().call_checks("agentkit"), StepLimits().call_checks("hermes")
            ((True, True, False), (False, True, True))
        """
        small = format_name == "agentkit"
        return (
            small if self.prune_calls is None else self.prune_calls,
            True if self.grounded_calls is None else self.grounded_calls,
            (not small) if self.judged_calls is None else self.judged_calls,
        )


def distinct(calls: list[ToolCall]) -> list[ToolCall]:
    """`calls` without repeats of an earlier call with the same name and arguments.

    Example:
        >>> same = [ToolCall(id=f"c{i}", name="ping", arguments={"host": "a"}) for i in range(3)]
        >>> [c.id for c in distinct(same)]
        ['c0']
    """
    seen: set[str] = set()
    kept = []
    for call in calls:
        key = json.dumps([call.name, call.arguments], sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            kept.append(call)
    return kept


class StepParseError(ValueError):
    """The text is not a valid step; the message is written for the model to read and fix."""


@dataclass(frozen=True)
class ParsedStep:
    """A step as data: either calls or a final answer."""

    thought: str | None
    calls: list[ToolCall]
    final_answer: Any = None
    is_final: bool = False
