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
    """Bounds the grammar puts on a step (and how repeated calls are read). Defaults suit small models; raise them for big ones.

    Checks on the calls of a step once it is written are `Agent(step_checks=...)` (`agentkit.checks`).

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
