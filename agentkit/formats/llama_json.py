"""The Llama 3.1 JSON format: `{"name": "get_weather", "parameters": {"city": "Paris"}}`.

Llama 3.1's template asks for one JSON object per call; several calls are separated by `; ` (the
convention vLLM's llama3_json parser reads). Anything that does not start with `{` is the answer.
"""

from __future__ import annotations

import json
from typing import Any

from agentkit.constraints import JsonSchemaConstraint
from agentkit.formats.base import TextAnswerFormat, repeat
from agentkit.registry import ToolRegistry  # noqa: F401  # the docstring examples use it
from agentkit.steps import StepParseError
from agentkit.types import ToolCall

PYTHON_TAG = "<|python_tag|>"


class Llama3JsonFormat(TextAnswerFormat):
    """`{"name": ..., "parameters": {...}}` (several joined by `; `), or a plain-text answer.

    Example:
        >>> from agentkit.tools import calculator
        >>> fmt = Llama3JsonFormat(ToolRegistry([calculator]))
        >>> fmt.render_calls(fmt.parse('{"name": "calculator", "parameters": {"expression": "2 + 2"}}', step_index=1).calls)
        '{"name": "calculator", "parameters": {"expression": "2 + 2"}}'
    """

    name = "llama3_json"
    opener = "{"
    arguments_key = "parameters"

    def _calls_rules(self) -> dict[str, str]:
        return {"calls": repeat("call", "; ", self.limits.max_calls), "call": JsonSchemaConstraint(json_schema=self.call_schema()).lark_rule()}

    def _parse_calls(self, text: str, step_index: int) -> list[ToolCall] | None:
        text = text.strip()
        if text.startswith(PYTHON_TAG):
            text = text[len(PYTHON_TAG) :].lstrip()
        if not text.startswith("{"):
            return None
        decoder = json.JSONDecoder()
        objects: list[Any] = []
        position = 0
        while position < len(text):
            try:
                data, position = decoder.raw_decode(text, position)
            except json.JSONDecodeError as exc:
                if not objects and self.output_type is not str:
                    return None  # not a call: maybe the typed answer
                raise StepParseError(f"Tool call {len(objects) + 1} is not valid JSON ({exc.msg}).") from None
            objects.append(data)
            while position < len(text) and text[position] in " \n\t;":
                position += 1
        if self.output_type is not str and not all(isinstance(o, dict) and "name" in o for o in objects):
            return None  # a JSON answer of the output type
        return [self._call_from_object(data, i, step_index) for i, data in enumerate(objects)]

    def _one_more_call(self, text: str) -> tuple[str, str] | None:
        return text.rstrip(), '"; " call'

    def render_calls(self, calls: list[ToolCall]) -> str:
        return "; ".join(json.dumps({"name": c.name, "parameters": c.arguments}, ensure_ascii=False) for c in calls)
