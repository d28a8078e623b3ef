"""Python literals for the pythonic tool format: JSON Schema -> Lark rules, parsing, rendering.

`[get_weather(city="Paris", days=3)]` is Python syntax, so argument values are Python literals:
`True`/`False`/`None`, double-quoted strings, numbers, lists and dicts. The grammar writes strings
with the escapes Python and JSON share (so `json.dumps` renders them), bounds every string, number
and list, and enforces each argument's schema. Parsing walks the syntax tree; nothing is evaluated.
"""

from __future__ import annotations

import ast
import json
import math
from typing import Any

from agentkit.steps import StepLimits

FRACTION_DIGITS = 12
# One character of a double-quoted string: anything but a quote, backslash or control character,
# or an escape that means the same in Python and JSON.
_STRING_CHAR = r'(?:[^"\\\x00-\x1f\x7f]|\\["\\bfnrt]|\\u[0-9a-fA-F]{4})'


class PythonGrammar:
    """Builds Lark rules that accept exactly the Python literals a JSON Schema allows.

    Example:
        >>> g = PythonGrammar(StepLimits())
        >>> rule = g.value({"type": "integer"}, {})
        >>> g.rules[rule]
        '/-?(?:0|[1-9][0-9]{0,17})/'
    """

    def __init__(self, limits: StepLimits, *, prefix: str = "v") -> None:
        self.limits = limits
        self.prefix = prefix
        self.rules: dict[str, str] = {}
        self._refs: dict[str, str] = {}

    def _rule(self, body: str) -> str:
        name = f"{self.prefix}{len(self.rules)}"
        self.rules[name] = body
        return name

    def keyword_arguments(self, schema: dict[str, Any], defs: dict[str, Any]) -> str:
        """A rule for `a=1, b="x"`: the object's properties as keyword arguments, in declared order ("" if none)."""
        properties = schema.get("properties", {})
        required = set(schema.get("required", []))
        items = [(json.dumps(f"{name}="), self.value(sub, defs), name in required) for name, sub in properties.items()]
        return self._ordered_sequence(items)

    def value(self, schema: Any, defs: dict[str, Any]) -> str:
        """The name of a rule accepting the Python literals `schema` allows."""
        if schema is True or not isinstance(schema, dict) or not schema:
            return self._any()
        if "$ref" in schema:
            return self._ref(schema["$ref"], defs)
        if "const" in schema:
            return self._rule(_literal(schema["const"]))
        if "enum" in schema:
            return self._rule(" | ".join(_literal(v) for v in schema["enum"]))
        for key in ("anyOf", "oneOf"):
            if key in schema:
                return self._rule(" | ".join(self.value(sub, defs) for sub in schema[key]))
        kind = schema.get("type")
        if isinstance(kind, list):
            return self._rule(" | ".join(self.value({**schema, "type": k}, defs) for k in kind))
        if kind == "string":
            low = int(schema.get("minLength", 0))
            high = int(schema.get("maxLength", max(self.limits.string_chars, low)))
            return self._rule(f'/"{_STRING_CHAR}{{{low},{high}}}"/')
        if kind == "integer":
            return self._rule(f"/-?(?:0|[1-9][0-9]{{0,{self.limits.int_digits - 1}}})/")
        if kind == "number":
            return self._rule(
                f"/-?(?:0|[1-9][0-9]{{0,{self.limits.int_digits - 1}}})(?:\\.[0-9]{{1,{FRACTION_DIGITS}}})?(?:[eE][+-]?[0-9]{{1,3}})?/"
            )
        if kind == "boolean":
            return self._rule('"True" | "False"')
        if kind == "null":
            return self._rule('"None"')
        if kind == "array":
            item = self.value(schema.get("items", {}), defs)
            low = int(schema.get("minItems", 0))
            high = int(schema.get("maxItems", max(self.limits.array_items, low)))
            return self._rule(f'"[" {self._list(item, low, high)} "]"')
        if kind == "object":
            return self._object(schema, defs)
        return self._any()

    def _object(self, schema: dict[str, Any], defs: dict[str, Any]) -> str:
        properties = schema.get("properties")
        if properties:
            required = set(schema.get("required", []))
            items = [
                (json.dumps(json.dumps(name, ensure_ascii=False) + ": ", ensure_ascii=False), self.value(sub, defs), name in required)
                for name, sub in properties.items()
            ]
            body = self._ordered_sequence(items)
            return self._rule(f'"{{" {body} "}}"' if body else '"{}"')
        extra = schema.get("additionalProperties", True)
        patterns = schema.get("patternProperties")
        if isinstance(patterns, dict) and patterns:  # a map whose key bound `bound_schema` put in a pattern
            extra = next(iter(patterns.values()))
        if extra is False:
            return self._rule('"{}"')
        key = self._rule(f'/"{_STRING_CHAR}{{1,{self.limits.key_chars}}}"/')
        entry = self._rule(f'{key} ": " {self.value(extra if isinstance(extra, dict) else {}, defs)}')
        high = int(schema.get("maxProperties", self.limits.array_items))
        return self._rule(f'"{{" {self._list(entry, 0, high)} "}}"')

    def _ordered_sequence(self, items: list[tuple[str, str, bool]]) -> str:
        """A rule for `item, item, ...` in the given order, where optional items may be left out ("" if none).

        Built back to front: `tail` is what may follow once an item was written, `head` is the
        first written item and what follows it.
        """
        tail = ""  # after the last item: nothing
        head = ""  # no items written at all
        for prefix, rule, is_required in reversed(items):
            item = f"{prefix} {rule}"
            this_head = f"{item} {tail}".strip()
            if is_required:
                head = self._rule(this_head)
                tail = self._rule(f'", " {this_head}')
            else:
                head = self._rule(f"{this_head} | {head}" if head else f"({this_head})?")
                tail = self._rule(f'(", " {item})? {tail}'.strip())
        return head

    def _list(self, item: str, low: int, high: int) -> str:
        """`item, item, ...` with between `low` and `high` items (nested optionals: no repetition syntax)."""
        high = max(high, low, 1)
        rest = ""
        for i in range(high - 1, 0, -1):
            inner = f'", " {item} {rest}'.strip()
            rest = f"({inner})" if i < low else f"({inner})?"
        body = f"{item} {rest}".strip()
        return body if low > 0 else f"({body})?"

    def _ref(self, ref: str, defs: dict[str, Any]) -> str:
        if ref in self._refs:
            return self._refs[ref]
        name = f"{self.prefix}{len(self.rules)}"
        self.rules[name] = "PENDING"  # reserve the name first: definitions may be recursive
        self._refs[ref] = name
        target = defs.get(ref.split("/")[-1], {}) if ref.startswith("#/$defs/") else {}
        self.rules[name] = self.value(target, defs)
        return name

    def _any(self) -> str:
        if "_any" not in self._refs:
            name = f"{self.prefix}{len(self.rules)}"
            self.rules[name] = "PENDING"
            self._refs["_any"] = name
            string = f'/"{_STRING_CHAR}{{0,{self.limits.string_chars}}}"/'
            number = f"/-?(?:0|[1-9][0-9]{{0,{self.limits.int_digits - 1}}})(?:\\.[0-9]{{1,{FRACTION_DIGITS}}})?/"
            key = f'/"{_STRING_CHAR}{{1,{self.limits.key_chars}}}"/'
            items = self._list(name, 0, self.limits.array_items)
            entries = self._list(self._rule(f'{key} ": " {name}'), 0, self.limits.array_items)
            self.rules[name] = f'{string} | {number} | "True" | "False" | "None" | "[" {items} "]" | "{{" {entries} "}}"'
        return self._refs["_any"]


def _literal(value: Any) -> str:
    """A Lark string literal matching exactly `python_literal(value)`."""
    return json.dumps(python_literal(value))


def python_literal(value: Any) -> str:
    """Write a JSON-like value as Python source, the way the grammar makes the model write it.

    Example:
        >>> python_literal({"city": "Zürich", "days": [1, 2.5], "ok": True, "note": None})
        '{"city": "Zürich", "days": [1, 2.5], "ok": True, "note": None}'
    """
    if value is None:
        return "None"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{value} has no literal form in a tool call")
        return json.dumps(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(python_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k), ensure_ascii=False)}: {python_literal(v)}" for k, v in value.items()) + "}"
    raise ValueError(f"{type(value).__name__} has no literal form in a tool call")


_NAMED_CONSTANTS = {"True": True, "False": False, "None": None, "true": True, "false": False, "null": None}


def literal_value(node: ast.AST) -> Any:
    """The value of a literal expression node; `ValueError` for anything that is not a plain literal.

    Accepts JSON's `true`/`false`/`null` too, which models write out of habit when unconstrained.
    """
    if isinstance(node, ast.Constant) and (node.value is None or isinstance(node.value, (str, int, float, bool))):
        return node.value
    if isinstance(node, ast.Name) and node.id in _NAMED_CONSTANTS:
        return _NAMED_CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = literal_value(node.operand)
        if isinstance(operand, (int, float)) and not isinstance(operand, bool):
            return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, (ast.List, ast.Tuple)):
        return [literal_value(e) for e in node.elts]
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise ValueError("a dict with ** unpacking is not a literal")
        return {str(literal_value(k)): literal_value(v) for k, v in zip(node.keys, node.values)}  # type: ignore[arg-type]
    raise ValueError(f"{ast.unparse(node)!r} is not a literal value")
