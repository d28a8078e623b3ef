"""The pythonic format (Llama 3.2 / 3.3 / 4): `[get_weather(city="Paris"), add(a=1, b=2)]`.

A Python list of calls with keyword arguments whose values are Python literals. Parsing walks the
syntax tree (`ast`); nothing is evaluated. Anything that does not start with `[` is the answer.
"""

from __future__ import annotations

import ast
import copy

from agentkit.errors import ToolDefinitionError
from agentkit.formats._python_values import PythonGrammar, literal_value, python_literal
from agentkit.formats.base import TextAnswerFormat, repeat
from agentkit.registry import ToolRegistry  # noqa: F401  # the docstring examples use it
from agentkit.schema import bound_schema
from agentkit.steps import StepParseError
from agentkit.types import ToolCall

PYTHON_START, PYTHON_END = "<|python_start|>", "<|python_end|>"  # Llama 4 may wrap its calls in these


class PythonicFormat(TextAnswerFormat):
    """A Python list of keyword-argument calls, or a plain-text answer.

    Example:
        >>> from agentkit.tools import calculator
        >>> fmt = PythonicFormat(ToolRegistry([calculator]))
        >>> fmt.parse('[calculator(expression="2 + 2")]', step_index=1).calls[0].arguments
        {'expression': '2 + 2'}
        >>> fmt.render_calls(fmt.parse('[calculator(expression="2 + 2")]', step_index=1).calls)
        '[calculator(expression="2 + 2")]'
    """

    name = "pythonic"
    opener = "["

    def _check_tools(self) -> None:
        for t in self.registry:
            if not t.name.isidentifier():
                raise ToolDefinitionError(
                    f"Tool name {t.name!r} is not a Python identifier, which the pythonic format needs. "
                    "Rename the tool (name='...' in @tool) or use another tool_format."
                )
            bad = [p for p in t.parameters.get("properties", {}) if not p.isidentifier()]
            if bad:
                raise ToolDefinitionError(
                    f"Tool {t.name!r} has arguments that are not Python identifiers ({bad}), which the pythonic "
                    "format needs for keyword arguments. Use another tool_format."
                )

    def _calls_rules(self) -> dict[str, str]:
        values = PythonGrammar(self.limits)
        calls = []
        for t in self.registry:
            parameters = bound_schema(copy.deepcopy(t.parameters), self.limits)
            arguments = values.keyword_arguments(parameters, parameters.get("$defs", {}))
            calls.append(f'"{t.name}(" {arguments} ")"' if arguments else f'"{t.name}()"')
        return {"calls": f'"[" {repeat("call", ", ", self.limits.max_calls)} "]"', "call": " | ".join(calls), **values.rules}

    def _parse_calls(self, text: str, step_index: int) -> list[ToolCall] | None:
        text = text.strip()
        if text.startswith(PYTHON_START):
            text = text[len(PYTHON_START) :].removesuffix(PYTHON_END).strip()
        if not text.startswith("["):
            return None
        try:
            tree = ast.parse(text, mode="eval").body
        except SyntaxError as exc:
            if self.output_type is not str:
                return None  # maybe a JSON list answer
            raise StepParseError(f"The calls are not a valid Python list ({exc.msg}).") from None
        if not isinstance(tree, ast.List) or not all(isinstance(e, ast.Call) for e in tree.elts):
            if self.output_type is not str:
                return None
            raise StepParseError("Write calls as a Python list of calls: [tool_name(argument=value), ...].")
        calls = []
        for i, node in enumerate(tree.elts):
            assert isinstance(node, ast.Call)
            if not isinstance(node.func, ast.Name):
                raise StepParseError(f"Call {i + 1}: the function must be a plain tool name.")
            if node.args or any(k.arg is None for k in node.keywords):
                raise StepParseError(f"Call {i + 1} ({node.func.id}): pass every argument by name, as name=value.")
            try:
                arguments = {k.arg: literal_value(k.value) for k in node.keywords if k.arg is not None}
            except ValueError as exc:
                raise StepParseError(f"Call {i + 1} ({node.func.id}): {exc}; arguments must be literal values.") from None
            calls.append(ToolCall(id=f"call_{step_index}_{i}", name=node.func.id, arguments=arguments))
        return calls

    def _one_more_call(self, text: str) -> tuple[str, str] | None:
        kept = text.rstrip()
        if not kept.endswith("]"):  # the list inside a <|python_start|> block: not continued
            return None
        return kept[:-1], '", " call "]"'

    def render_calls(self, calls: list[ToolCall]) -> str:
        rendered = (
            f"{c.name}(" + ", ".join(f"{k}={python_literal(v)}" for k, v in c.arguments.items()) + ")" for c in calls
        )
        return "[" + ", ".join(rendered) + "]"
