"""What every tool format does, and the shared machinery of the formats whose final answer is plain text.

A `ToolFormat` is one surface syntax for "the model's next step": a grammar that makes constrained
decoding emit exactly that syntax (with each tool's argument schema enforced inside it), a parser
back to typed `ToolCall`s, and a renderer that writes a step the way the grammar would (for few-shot
examples and conversation history). Whatever the syntax, the agent loop sees the same `ParsedStep`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, ClassVar, Protocol, runtime_checkable

from agentkit.constraints import Constraint, JsonSchemaConstraint, LarkConstraint
from agentkit.formats.step_json import StepFormat, output_adapter, tool_call_variants
from agentkit.registry import ToolRegistry
from agentkit.schema import bound_schema
from agentkit.steps import ParsedStep, StepLimits, StepParseError, distinct
from agentkit.types import ToolCall


@runtime_checkable
class ToolFormat(Protocol):
    """One tool-call syntax: its grammar, its parser and its renderer, for one tool set.

    `constraint()` gives the `GenerationRequest.constraint` that enforces the syntax (a JSON Schema
    or a Lark grammar); `call_shape()` / `answer_shape()` describe it to the model in prompts.
    """

    name: str
    registry: ToolRegistry
    output_type: Any
    limits: StepLimits

    def constraint(self) -> Constraint: ...

    def parse(self, text: str, *, step_index: int) -> ParsedStep: ...

    def render(self, step: ParsedStep) -> str: ...

    def call_shape(self) -> str: ...

    def answer_shape(self) -> str: ...


class TextAnswerFormat:
    """Base of the native formats: a step is either tool calls in the format's syntax or a plain-text answer.

    The answer may not begin with the character that begins a call (`opener`), so the grammar
    decides between "call" and "answer" at the first token, and a call, once begun, is held to its
    schema. With a structured `output_type` the answer is that type's JSON instead of text.
    """

    name: ClassVar[str]
    opener: ClassVar[str]  # the first character of every call block
    arguments_key: ClassVar[str] = "arguments"

    def __init__(
        self, registry: ToolRegistry, output_type: Any = str, limits: StepLimits | None = None, *,
        answer_only: bool = False, calls_only: bool = False,
    ) -> None:
        if answer_only and calls_only:
            raise ValueError("A format cannot be both answer_only and calls_only.")
        self.registry = registry
        self.output_type = output_type
        # Answer-only: the grammar has no calls, yet the answer still may not begin like one (asked
        # for an answer after a step check dropped every call, a model writes its call as text).
        self.answer_only = answer_only
        # Calls-only: the step must call a tool (after a step check told the model to call again).
        self.calls_only = calls_only and bool(registry.names)
        self.limits = limits or StepLimits()
        self._output_adapter = output_adapter(output_type)
        self._check_tools()
        self.grammar = self._grammar()
        self.schema_hash = hashlib.sha256(self.grammar.encode()).hexdigest()[:16]

    # -- what subclasses provide ------------------------------------------------------------------

    def _calls_rules(self) -> dict[str, str]:
        """Lark rules with a `calls` rule: one step's tool calls (at least one, at most `max_calls`)."""
        raise NotImplementedError

    def _parse_calls(self, text: str, step_index: int) -> list[ToolCall] | None:
        """The calls in `text`, None when it holds no call at all (then it is an answer)."""
        raise NotImplementedError

    def render_calls(self, calls: list[ToolCall]) -> str:
        """The text of a step that makes `calls`, exactly as the grammar writes it."""
        raise NotImplementedError

    def _check_tools(self) -> None:
        """Raise `ToolDefinitionError` for tools the syntax cannot express."""

    def _one_more_call(self, text: str) -> tuple[str, str] | None:
        """How the calls of `text` (a reply with calls) go on to one more: (the text to keep, the Lark that follows).

        None when this format cannot say (`one_more_call_constraint` then gives nothing).
        """
        return None

    def one_more_call_constraint(self, text: str) -> LarkConstraint | None:
        """A grammar that writes `text` (a reply with calls) as it is, then exactly one more call in the same spelling.

        `agentkit.checks.MoreCalls` asks for it; None when the format cannot continue `text`.

        Example:
            >>> from agentkit.formats import make_tool_format
            >>> from agentkit.tools import calculator
            >>> fmt = make_tool_format("llama3_json", ToolRegistry([calculator]))
            >>> print(fmt.one_more_call_constraint('{"name": "calculator", "parameters": {"expression": "1"}}').grammar.splitlines()[0])
            start: "{\\"name\\": \\"calculator\\", \\"parameters\\": {\\"expression\\": \\"1\\"}}" "; " call
        """
        if not self.registry.names or self.answer_only:
            return None
        spelled = self._one_more_call(text)
        if spelled is None:
            return None
        kept, more = spelled
        rules = {"start": f"{json.dumps(kept, ensure_ascii=False)} {more}", **self._calls_rules()}
        return LarkConstraint(grammar="\n".join(f"{name}: {body}" for name, body in rules.items()) + "\n")

    # -- ToolFormat ------------------------------------------------------------------------------

    def constraint(self) -> LarkConstraint:
        """What holds decoding to this format: its Lark grammar."""
        return LarkConstraint(grammar=self.grammar)

    def parse(self, text: str, *, step_index: int) -> ParsedStep:
        """Calls if the text holds any (in this syntax), else the final answer."""
        calls = self._parse_calls(text, step_index) if self.registry.names and not self.answer_only else None
        if calls:
            return ParsedStep(thought=None, calls=distinct(calls) if self.limits.distinct_calls else calls)
        return ParsedStep(thought=None, calls=[], final_answer=self._parse_answer(text), is_final=True)

    def render(self, step: ParsedStep) -> str:
        """A step as the model writes it: the calls, or the answer text."""
        if not step.is_final:
            return self.render_calls(step.calls)
        if self.output_type is str:
            return str(step.final_answer)
        return json.dumps(self._output_adapter.dump_python(step.final_answer, mode="json"), ensure_ascii=False)

    def call_shape(self) -> str:
        example = ToolCall(id="shape", name="tool_name", arguments={"argument": "value"})
        return self.render_calls([example])

    def answer_shape(self) -> str:
        return "plain text" if self.output_type is str else "one JSON value of the answer's type"

    # -- shared pieces ---------------------------------------------------------------------------

    def _grammar(self) -> str:
        rules = self._calls_rules() if self.registry.names and not self.answer_only else {}
        answer = self._answer_rule()
        start = ("calls" if self.calls_only else "calls | answer") if rules else "answer"
        lines = [f"start: {start}", f"answer: {answer}"] + [f"{name}: {body}" for name, body in rules.items()]
        return "\n".join(lines) + "\n"

    def _answer_rule(self) -> str:
        if self.output_type is str:
            low = 1
            # First character: not whitespace and not the call opener; then anything, bounded.
            first = "[^\\s" + _regex_class_escape(self.opener) + "]" if self.registry.names else "[^\\s]"
            return f"/{first}[^\\x00]{{0,{max(self.limits.answer_chars - low, 0)}}}/"
        schema = StepFormat(ToolRegistry([]), output_type=self.output_type, limits=self.limits).grammar_schema()
        answer = schema["properties"]["final_answer"]
        if "$defs" in schema:
            answer = {**answer, "$defs": schema["$defs"]}
        return JsonSchemaConstraint(json_schema=answer).lark_rule()

    def _parse_answer(self, text: str) -> Any:
        if self.output_type is str:
            return text.strip()
        try:
            return self._output_adapter.validate_json(text.strip())
        except Exception as exc:
            raise StepParseError(f"The answer is not valid JSON of the answer's type: {str(exc).splitlines()[0]}") from None

    def call_schema(self, *, arguments_key: str | None = None) -> dict[str, Any]:
        """The JSON Schema of one call object `{"name": ..., "<arguments_key>": {...}}`, bounded for the grammar."""
        defs: dict[str, Any] = {}
        variants = tool_call_variants(self.registry, arguments_key or self.arguments_key, into=defs)
        schema: dict[str, Any] = {"anyOf": variants} if len(variants) > 1 else variants[0]
        if defs:
            schema = {**schema, "$defs": defs}
        return bound_schema(schema, self.limits)  # a fresh copy: tool_call_variants copies each tool's schema

    def _call_from_object(self, data: Any, index: int, step_index: int) -> ToolCall:
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            raise StepParseError(f"Call {index + 1} must be an object with a string \"name\".")
        arguments = data.get(self.arguments_key, data.get("arguments", data.get("parameters", {})))
        if not isinstance(arguments, dict):
            raise StepParseError(f"Call {index + 1}: \"{self.arguments_key}\" must be an object.")
        return ToolCall(id=f"call_{step_index}_{index}", name=data["name"], arguments=arguments)


def _regex_class_escape(text: str) -> str:
    return "".join("\\" + c if c in "[]\\^-/" else c for c in text[:1])


def repeat_optional(item: str, most: int) -> str:
    """Lark for zero to `most` `item`s in a row (nested optionals).

    Example:
        >>> repeat_optional("line", 2)
        '(line (line)?)?'
    """
    rest = ""
    for _ in range(max(most, 0)):
        rest = f"({item}{' ' + rest if rest else ''})?"
    return rest


def repeat(item: str, separator: str, most: int) -> str:
    """Lark for one to `most` `item`s joined by `separator` (nested optionals, no repetition syntax).

    Example:
        >>> repeat("call", "; ", 3)
        'call ("; " call ("; " call)?)?'
    """
    rest = ""
    for _ in range(max(most, 1) - 1):
        rest = f"({json.dumps(separator)} {item}{' ' + rest if rest else ''})?"
    return f"{item} {rest}".strip()
