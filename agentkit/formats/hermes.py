"""The Hermes format (Nous Hermes 2, Qwen 2.5/3 and most ChatML fine-tunes).

    <tool_call>
    {"name": "get_weather", "arguments": {"city": "Paris"}}
    </tool_call>

One block per call, separated by a newline; anything else is the final answer.
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
        return {
            "calls": repeat("call", "\n", self.limits.max_calls),
            "call": f'"<tool_call>\\n" {_json_rule(self.call_schema())} "\\n</tool_call>"',
        }

    def _parse_calls(self, text: str, step_index: int) -> list[ToolCall] | None:
        if OPEN not in text:
            return None
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

    def render_calls(self, calls: list[ToolCall]) -> str:
        return "\n".join(
            OPEN + "\n" + json.dumps({"name": c.name, "arguments": c.arguments}, ensure_ascii=False) + "\n" + CLOSE
            for c in calls
        )
