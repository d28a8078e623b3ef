"""Grounded calls (`GroundedCalls`): a call whose numbers and every other value are invented is a guess.

A small model under a grammar always writes a well-formed call, including when no tool fits the
task: it then fills the arguments with values from nowhere (`calculate_time(distance=100,
speed=20)` for "What's the time right now?"). A call the task asks for takes at least one of its
values from the conversation: a number, a name, a word of the task, of an earlier turn or of a
tool's result. So a call with numbers of its own choosing none of whose values appears there is
discarded, and when no call is left the agent asks the model for its answer instead.

Only numbers and copied examples condemn a call: strings are often composed rather than copied (a
shell command for "check the disk usage", a search query), so a call without numbers is kept unless
one of its strings is the example its tool's description gives (`department: the department's
name, e.g. "finance"`) and is nowhere in the conversation: the model filled in the example instead
of a value it knows (`department_info("finance")` for "the budget of Ben's department", before
looking up Ben's department). Such a call is discarded with `call_again`: the model reads why and
must call again (it may insist on the same call, which then runs). Booleans, empty strings and
values a tool's schema fixes to a list (`enum`, `const`) say nothing about where they came from and
are not looked at. A value counts as found when the number (also as a percentage) or one of its
words occurs in the conversation, so the test errs towards keeping calls.

Example:
    >>> from agentkit.types import ToolCall
    >>> call = ToolCall(id="1", name="get_forecast", arguments={"city": "Lima", "days": 3})
    >>> is_grounded(call, {}, "Will it rain in Lima this week?")      # Lima is in the task
    True
    >>> is_grounded(call, {}, "What is the capital of Peru?")         # 3 and Lima are both invented
    False
    >>> lookup = ToolCall(id="2", name="department_info", arguments={"department": "finance"})
    >>> is_grounded(lookup, {}, "What is Ben's budget?", examples=['"finance"'])  # the description's example
    False

On by default for every format (`DEFAULT_STEP_CHECKS`): on the tool-tuned Qwen2.5-Coder 1.5B and
0.5B it dropped none of their correct BFCL calls (0 of 163 and 0 of 123) and took `irrelevance` from
40% to 60% and from 12% to 36%; judging copied examples too took it to 62% and 40%, and changed no
verdict in the call categories (benchmarks/RESULTS.md). It can discard a call a capable model worked
out on its own (`get_forecast(days=7)` alone for "the weather next week"): leave it out of
`step_checks` when the model must work out every number itself.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from agentkit.checks.base import CheckContext, Discard, ScopedCheck
from agentkit.steps import ParsedStep
from agentkit.types import ToolCall

_NUMBER = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?")
_WORD = re.compile(r"\w+")
# Where a description gives an example value: from the marker to the end of the sentence or parenthesis.
_EXAMPLE = re.compile(r"(?:\be\.\s?g\.?|\bfor example\b|\bfor instance\b|\bsuch as\b)[:,]?\s*(.*?)(?=\.(?:\s|$)|\)|$)", re.I | re.S)
# A number the model wrote counts as found when it is a conversation's number times one of these:
# itself, a percentage either way, or an SI prefix (kilo/mega/giga, milli/micro/nano) either way.
_SCALES = (1.0, 100.0, 0.01, 1e3, 1e-3, 1e6, 1e-6, 1e9, 1e-9)


@dataclass(frozen=True, repr=False)
class GroundedCalls(ScopedCheck):
    """A call with numbers or copied examples of the model's own choosing, none of whose values is in the conversation, is discarded.

    The conversation is the task, earlier turns and tool results (not the system prompt or the
    few-shot examples: a value copied from an example is a guess). Calls without such numbers or
    such a string (one its tool's description gives as an example: "e.g.", "for example", "such
    as") are never judged, nor booleans or a schema's `enum`/`const` choices.

    Example:
        >>> GroundedCalls()
        GroundedCalls()
    """

    name: ClassVar[str] = "grounded_calls"
    reason: ClassVar[str] = "its values are not in the conversation"

    async def check(self, context: CheckContext, step: ParsedStep) -> list[Discard]:
        """The calls of `step` whose values are guesses."""
        said = _Said.of(context.conversation)
        discards = []
        for call in step.calls:
            if call.name not in context.registry:
                continue
            tool = context.registry.get(call.name)
            examples = description_examples(tool.description, tool.parameters, tool.examples)
            if _grounded(call, tool.parameters, said, examples):
                continue
            copied = next(((name, v) for name, schema, v in _chosen(call, tool.parameters) if _copied(schema, v, examples, said)), None)
            if copied is None:
                discards.append(Discard(call=call, reason=self.reason))
            else:  # a tool is wanted, with a value the model has yet to find: it may look it up and call again
                parameter, value = copied
                reason = (
                    f"{parameter} {value!r} is only the example from its description, not a value from this conversation. "
                    f"Call {call.name} again with the real {parameter} (look it up with a tool first if you do not know it)"
                )
                discards.append(Discard(call=call, reason=reason, call_again=True))
        return discards


def is_grounded(call: ToolCall, parameters: dict[str, Any], conversation: str, *, examples: Sequence[str] = ()) -> bool:
    """False when `call` has numbers or copied examples the model chose and none of its chosen values occurs in `conversation`.

    `parameters` is the tool's JSON Schema (its `properties` say which values are fixed choices);
    `examples` the example passages of the tool's descriptions (`description_examples`).
    """
    return _grounded(call, parameters, _Said.of(conversation), examples)


@dataclass(frozen=True)
class _Said:
    """The conversation, lowercased, and the numbers in it: where a call's values may come from."""

    text: str
    numbers: list[float]

    @classmethod
    def of(cls, conversation: str) -> _Said:
        text = conversation.lower()
        return cls(text, numbers_in(text))

    def holds(self, value: Any) -> bool:
        return _found(value, self.text, self.numbers)


def _grounded(call: ToolCall, parameters: dict[str, Any], said: _Said, examples: Sequence[str]) -> bool:
    chosen = _chosen(call, parameters)
    if not any(isinstance(v, (int, float)) or _copied(schema, v, examples, said) for _, schema, v in chosen):
        return True  # strings are too often composed (a shell command, a query) to condemn a call
    return any(said.holds(v) for _, _, v in chosen)


def chosen_values(call: ToolCall, parameters: dict[str, Any]) -> list[Any]:
    """The values of `call` the model chose: every leaf but booleans, empty strings and the schema's fixed choices.

    Example:
        >>> call = ToolCall(id="1", name="f", arguments={"city": "Lima", "days": [1, 2], "metric": True, "unit": "C"})
        >>> chosen_values(call, {"properties": {"unit": {"enum": ["C", "F"]}}})
        ['Lima', 1, 2]
    """
    return [v for _, _, v in _chosen(call, parameters)]


def numbers_in(text: str) -> list[float]:
    """The numbers written in `text` ("1,000" is one number; "5,10" two).

    Example:
        >>> numbers_in("1,000 people on 5,10 and 15 May")
        [1000.0, 5.0, 10.0, 15.0]
    """
    return [float(n.replace(",", "")) for n in _NUMBER.findall(text)]


def _chosen(call: ToolCall, parameters: dict[str, Any]) -> list[tuple[str, dict[str, Any], Any]]:
    """(parameter, its schema, value) for each value the model chose: not fixed by the schema, not a boolean or empty."""
    properties = parameters.get("properties", {})
    return [
        (name, properties.get(name, {}), v) for name, value in call.arguments.items() if not _fixed_choice(properties.get(name, {}))
        for v in _leaves(value) if _judged(v)
    ]


def _copied(schema: dict[str, Any], value: Any, examples: Sequence[str], said: _Said) -> bool:
    """A string its description gives as an example, not the parameter's default, and not in the conversation."""
    return isinstance(value, str) and value != schema.get("default") and _in_examples(value, examples) and not said.holds(value)


def description_examples(description: str, parameters: dict[str, Any], examples: Sequence[dict[str, Any]] = ()) -> list[str]:
    """The example passages of a tool's description and of its parameters' descriptions, lowercased.

    A passage runs from "e.g." (or "for example", "for instance", "such as") to the end of its
    sentence or parenthesis. The string values of the tool's example calls (`@tool(examples=...)`)
    count as passages too.

    Example:
        >>> description_examples("Facts about a department.", {"properties": {"department": {
        ...     "description": "the department's name, e.g. 'finance'."}}})
        ["'finance'"]
    """
    texts = [description, *_schema_descriptions(parameters)]
    passages = [m.group(1).strip().lower() for text in texts for m in _EXAMPLE.finditer(text or "")]
    return passages + [v.lower() for example in examples for v in _leaves(example) if isinstance(v, str)]


def _schema_descriptions(schema: Any) -> Iterator[str]:
    if isinstance(schema, dict):
        if isinstance(schema.get("description"), str):
            yield schema["description"]
        for value in schema.values():
            if isinstance(value, (dict, list)):
                yield from _schema_descriptions(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from _schema_descriptions(item)


def _in_examples(value: str, examples: Sequence[str]) -> bool:
    """Whether `value`, as whole words, is in one of the example passages."""
    needle = value.strip().lower()
    if not needle:
        return False
    pattern = re.compile(rf"(?<!\w){re.escape(needle)}(?!\w)")
    return any(pattern.search(example) for example in examples)


def _fixed_choice(schema: dict[str, Any]) -> bool:
    if "enum" in schema or "const" in schema:
        return True
    items = schema.get("items")
    return isinstance(items, dict) and ("enum" in items or "const" in items)


def _leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        for inner in value.values():
            yield from _leaves(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _leaves(inner)
    else:
        yield value


def _judged(value: Any) -> bool:
    if value is None or isinstance(value, bool):
        return False
    return not (isinstance(value, str) and not value.strip())


def _found(value: Any, text: str, numbers: list[float]) -> bool:
    if isinstance(value, (int, float)):
        target = abs(float(value))
        # 0.05 for "5%" and 5 for "0.05" count too, and so does a unit prefix converted: 0.05 for "50 mH",
        # 0.0001 for "100 µF", 2000 for "2 km".
        return any(math.isclose(n, target * scale, rel_tol=1e-9, abs_tol=1e-12) for n in numbers for scale in _SCALES)
    string = str(value).lower().strip()
    words = _WORD.findall(string)
    if not words:  # only symbols or emoji: the value itself
        return string in text
    return any(_word_found(w, text) for w in words)


def _word_found(word: str, text: str) -> bool:
    if word.isascii():
        # One letter ("C" for a note, "x" for a variable) only as a word of its own.
        return word in text if len(word) >= 2 else re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text) is not None
    # Scripts without spaces (Chinese, Japanese) make one long "word": any two adjacent characters do.
    if len(word) < 2:
        return word in text
    return any(word[i : i + 2] in text for i in range(len(word) - 1))
