"""The Hermes format (Nous Hermes 2, Qwen 2.5/3 and most ChatML fine-tunes).

    <tool_call>
    {"name": "get_weather", "arguments": {"city": "Paris"}}
    </tool_call>

One block per call, separated by a newline; anything else is the final answer.

Qwen2.5 models, asked in their own template, mostly write the call *without* the tags: bare
`{"name": ..., "arguments": ...}` objects, or the same in a ```json fence (benchmarks/RESULTS.md,
"What the reference models write"). Those are calls too: the grammar offers all three spellings
(each object held to the call schema), the answer may not start like any of them, and the parser
reads each back to the same `ToolCall`s. History and examples are always written with the tags.
"""

from __future__ import annotations

import json

from agentkit.formats.base import TextAnswerFormat, _json_rule, repeat
from agentkit.registry import ToolRegistry  # noqa: F401 - used by the docstring example
from agentkit.steps import StepParseError
from agentkit.types import ToolCall

OPEN, CLOSE = "<tool_call>", "</tool_call>"


class HermesFormat(TextAnswerFormat):
    """`<tool_call>{"name": ..., "arguments": {...}}</tool_call>` blocks, or a plain-text answer.

    Example:
        >>> from agentkit.tools import calculator
        >>> fmt = HermesFormat(ToolRegistry([calculator]))
        >>> fmt.parse('<tool_call>\\n{"name": "calculator", "arguments": {"expression": "2 + 2"}}\\n</tool_call>',
        ...           step_index=1).calls[0].arguments
        {'expression': '2 + 2'}
    """

    name = "hermes"
    opener = "<"

    def _calls_rules(self) -> dict[str, str]:
        most = self.limits.max_calls
        rules = {
            "calls": "tagged_calls",
            "tagged_calls": repeat("call", "\n", most),
            "call": '"<tool_call>\\n" call_object "\\n</tool_call>"',
            "call_object": _json_rule(self.call_schema()),
        }
        if self.output_type is str:  # a JSON answer of a structured output type would start like a bare call
            rules["calls"] = "tagged_calls | bare_calls | fenced_calls"
            objects = repeat("call_object", "\n", most)
            rules["bare_calls"] = objects
            rules["fenced_calls"] = f'"```json\\n" {objects} "\\n```"'
        return rules

    def _answer_rule(self) -> str:
        if self.output_type is not str or not self.registry.names:
            return super()._answer_rule()
        # Not whitespace, "<", "{" or a ```json fence: those begin calls. Other fences (```python) are answers.
        rest = f"[^\\x00]{{0,{max(self.limits.answer_chars - 4, 0)}}}"
        return " | ".join(
            f"/{first}{rest}/"
            for first in ("[^\\s<{`]", "`{1,2}[^`]", "```(?:[^j`\\s]|j(?:[^s]|s(?:[^o]|o[^n])))")
        )

    def _parse_calls(self, text: str, step_index: int) -> list[ToolCall] | None:
        if OPEN in text:
            return self._parse_tagged(text, step_index)
        body = text.strip()
        if self.output_type is str and body.startswith("```json"):
            body = body.removeprefix("```json").removesuffix("```")
        elif self.output_type is not str or not body.startswith("{"):
            return None
        return self._parse_objects(body, step_index)

    def _parse_tagged(self, text: str, step_index: int) -> list[ToolCall]:
        # Each block's JSON is read with a JSON decoder, not up to the next `</tool_call>`: an argument
        # may itself contain the marker text (a prompt-injected value, or a random model's string).
        decoder = json.JSONDecoder()
        calls, position = [], 0
        while (start := text.find(OPEN, position)) != -1:
            body = start + len(OPEN)
            body += len(text[body:]) - len(text[body:].lstrip())
            try:
                data, position = decoder.raw_decode(text, body)
            except json.JSONDecodeError as exc:
                raise StepParseError(f"Tool call {len(calls) + 1} is not valid JSON ({exc.msg}).") from None
            calls.append(self._call_from_object(data, len(calls), step_index))
            rest = text[position:].lstrip()
            if rest.startswith(CLOSE):
                position = len(text) - len(rest) + len(CLOSE)
        return calls

    def _parse_objects(self, body: str, step_index: int) -> list[ToolCall]:
        """Bare call objects, one after another (the untagged spellings)."""
        decoder = json.JSONDecoder()
        calls, position = [], 0
        body = body.strip()
        while position < len(body):
            try:
                data, position = decoder.raw_decode(body, position)
            except json.JSONDecodeError as exc:
                raise StepParseError(f"Tool call {len(calls) + 1} is not valid JSON ({exc.msg}).") from None
            calls.append(self._call_from_object(data, len(calls), step_index))
            while position < len(body) and body[position] in " \n\t":
                position += 1
        return calls

    def render_calls(self, calls: list[ToolCall]) -> str:
        return "\n".join(
            OPEN + "\n" + json.dumps({"name": c.name, "arguments": c.arguments}, ensure_ascii=False) + "\n" + CLOSE
            for c in calls
        )
