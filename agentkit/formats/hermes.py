"""The Hermes format (Nous Hermes 2, Qwen 2.5/3 and most ChatML fine-tunes).

    <tool_call>
    {"name": "get_weather", "arguments": {"city": "Paris"}}
    </tool_call>

One block per call, separated by a newline; anything else is the final answer.
"""

from __future__ import annotations

import json
import re

from agentkit.formats.base import TextAnswerFormat, _json_rule, repeat
from agentkit.registry import ToolRegistry  # noqa: F401 - used by the docstring example
from agentkit.steps import StepParseError
from agentkit.types import ToolCall

_BLOCK = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.DOTALL)


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
        blocks = _BLOCK.findall(text)
        if not blocks:
            return None
        calls = []
        for i, block in enumerate(blocks):
            try:
                data = json.loads(block.strip())
            except json.JSONDecodeError as exc:
                raise StepParseError(f"Tool call {i + 1} is not valid JSON ({exc.msg}).") from None
            calls.append(self._call_from_object(data, i, step_index))
        return calls

    def render_calls(self, calls: list[ToolCall]) -> str:
        return "\n".join(
            "<tool_call>\n" + json.dumps({"name": c.name, "arguments": c.arguments}, ensure_ascii=False) + "\n</tool_call>"
            for c in calls
        )
