"""The Hermes format (Nous Hermes 2, Qwen 2.5/3 and most ChatML fine-tunes).

    <tool_call>
    {"name": "get_weather", "arguments": {"city": "Paris"}}
    </tool_call>

One block per call, separated by a newline; anything else is the final answer.

Qwen2.5 models, asked in their own template, mostly write the call *without* the tags: bare
`{"name": ..., "arguments": ...}` objects, or the same in a ```json fence (benchmarks/RESULTS.md,
"What the reference models write"). Those are calls too: the grammar offers all three spellings
(each object held to the call schema). Qwen also often announces a call in a sentence first, so the
answer is lines of prose, no line starting like a call, and calls may follow the prose on a line of
their own. The parser reads each spelling back to the same `ToolCall`s (a call starts at a line
start; the prose before it is dropped). History and examples are always written with the tags.
"""

from __future__ import annotations

import json
import re

from agentkit.constraints import JsonSchemaConstraint
from agentkit.formats.base import TextAnswerFormat, repeat, repeat_optional
from agentkit.registry import ToolRegistry  # noqa: F401 - used by the docstring example
from agentkit.steps import StepParseError
from agentkit.types import ToolCall

OPEN, CLOSE = "<tool_call>", "</tool_call>"
_CALL_AT_LINE_START = re.compile(r"^(?:<tool_call>|\{|```json)", re.MULTILINE)
# Lark regex pieces: a first character that begins no call, and a fence that is not ```json.
_FIRST = "[^\\s<{`]"
_FENCE_NOT_JSON = "`{1,2}[^`\\n\\x00]|```(?:[^j`\\n\\x00]|j(?:[^s\\n]|s(?:[^o\\n]|o[^n\\n])))"


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
        # A newline may end the calls: Qwen's likeliest ending after a call is "\n" then the end token,
        # and without it the newline could only start another call, which the model is then forced to write.
        rules = {
            "calls": 'tagged_calls "\\n"?',
            "tagged_calls": repeat("call", "\n", most),
            "call": '"<tool_call>\\n" call_object "\\n</tool_call>"',
            "call_object": JsonSchemaConstraint(json_schema=self.call_schema()).lark_rule(),
        }
        if self.output_type is str:  # a JSON answer of a structured output type would start like a bare call
            objects = repeat("call_object", "\n", most)
            rules["calls"] = '(tagged_calls | bare_calls | fenced_calls) "\\n"?'
            rules["bare_calls"] = objects
            rules["fenced_calls"] = f'"```json\\n" {objects} "\\n```"'
        return rules

    def _grammar(self) -> str:
        if self.output_type is not str or not self.registry.names:
            return super()._grammar()
        # The answer is lines of prose, and calls may follow it on a line of their own: Qwen often
        # announces a call first ("To answer this, I'll query the database.\n```json ..."). No line of
        # prose starts like a call (whitespace first is fine after the first line; other fences such
        # as ```python are prose), so at every line start the grammar knows which it is.
        # The whole answer stays within `answer_chars` (the step's token budget is sized for it): a
        # first line of up to half of it, then up to three more lines of a sixth each.
        chars = self.limits.answer_chars
        rules = {
            "start": "prose" if self.answer_only else "calls | prose nl calls" if self.calls_only else "calls | prose (nl calls)?",
            "prose": f"first_line {repeat_optional('nl line', 3)}",
            "nl": "/\\n{1,3}/",
            "first_line": f"/(?:{_FIRST}|{_FENCE_NOT_JSON})[^\\n\\x00]{{0,{max(chars // 2 - 4, 0)}}}|```/",
            # "```" alone closes a fence.
            "line": f"/(?:[^\\s<{{`\\x00]|[ \\t]|{_FENCE_NOT_JSON})[^\\n\\x00]{{0,{max(chars // 6 - 4, 0)}}}|```/",
            **({} if self.answer_only else self._calls_rules()),
        }
        return "\n".join(f"{name}: {body}" for name, body in rules.items()) + "\n"

    def _parse_calls(self, text: str, step_index: int) -> list[ToolCall] | None:
        if self.output_type is not str:
            return self._parse_tagged(text, step_index) if OPEN in text else None
        start = _CALL_AT_LINE_START.search(text)
        if start is None:  # "<tool_call>" inside a sentence is text, as the grammar's answer allows it
            return None
        body = text[start.start():].strip()  # the prose before it, if any, is the model's preamble
        if body.startswith(OPEN):
            return self._parse_tagged(body, step_index)
        if body.startswith("```json"):
            body = body.removeprefix("```json").removesuffix("```")
        return self._parse_objects(body, step_index)

    def _parse_tagged(self, text: str, step_index: int) -> list[ToolCall]:
        # Each block's JSON is read with a JSON decoder, not up to the next `</tool_call>`: an argument
        # may itself contain the marker text (a prompt-injected value, or a random model's string).
        decoder = json.JSONDecoder()
        calls: list[ToolCall] = []
        position = 0
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
        calls: list[ToolCall] = []
        position = 0
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

    def _one_more_call(self, text: str) -> tuple[str, str] | None:
        kept = text.rstrip()
        start = _CALL_AT_LINE_START.search(kept) if self.output_type is str else None
        body = kept[start.start():] if start else kept
        if body.startswith("```json"):  # inside the fence, after its last call
            return (kept.removesuffix("```").rstrip("\n"), '"\\n" call_object "\\n```"') if body.endswith("```") else None
        return kept, '"\\n" call' if body.startswith(OPEN) else '"\\n" call_object'

    def render_calls(self, calls: list[ToolCall]) -> str:
        return "\n".join(
            OPEN + "\n" + json.dumps({"name": c.name, "arguments": c.arguments}, ensure_ascii=False) + "\n" + CLOSE
            for c in calls
        )
