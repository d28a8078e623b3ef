"""JSON Schema helpers shared by tools, tool formats and MCP clients: tool names, tidy schemas, grammar bounds.

A tool's schema is written twice: as the user's types say (what arguments are validated against)
and as the grammar copy that constrained decoding enforces, where every string, array, map and
integer the user left unbounded gets a bound so a small model cannot ramble until the token limit.

Example:
    >>> from agentkit.steps import StepLimits
    >>> valid_tool_name("get_weather"), valid_tool_name("final_answer")
    (True, False)
    >>> bound_schema({"type": "array", "items": {"type": "string"}}, StepLimits(string_chars=20, array_items=3))
    {'type': 'array', 'items': {'type': 'string', 'maxLength': 20}, 'maxItems': 3}
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

from agentkit.steps import StepLimits

# A tool name: what OpenAI-style function names allow, and what every tool format can write.
TOOL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
# Names no tool may take: the step format's answer key.
RESERVED_TOOL_NAMES = frozenset({"final_answer"})

Node = TypeVar("Node")


def valid_tool_name(name: str) -> bool:
    """Whether `name` can name a tool: it matches `TOOL_NAME` and is not one of `RESERVED_TOOL_NAMES`.

    Example:
        >>> valid_tool_name("search-issues"), valid_tool_name("2fa"), valid_tool_name("x" * 65)
        (True, False, False)
    """
    return bool(TOOL_NAME.match(name)) and name not in RESERVED_TOOL_NAMES


def tidy_schema(schema: Any) -> Any:
    """A copy of `schema` without pydantic's auto-generated titles: they cost prompt tokens and tell the model nothing.

    Example:
        >>> tidy_schema({"title": "Args", "type": "object", "properties": {"title": {"title": "Title", "type": "string"}}})
        {'type': 'object', 'properties': {'title': {'type': 'string'}}}
    """
    if isinstance(schema, dict):
        tidy = {}
        for key, value in schema.items():
            if key == "title" and isinstance(value, str):
                continue
            if key in ("properties", "$defs") and isinstance(value, dict):
                tidy[key] = {name: tidy_schema(sub) for name, sub in value.items()}
            elif key in ("default", "const", "enum", "examples"):
                tidy[key] = value  # data, not schema: a "title" key in it is the user's
            else:
                tidy[key] = tidy_schema(value)
        return tidy
    if isinstance(schema, list):
        return [tidy_schema(item) for item in schema]
    return schema


def bound_schema(node: Node, limits: StepLimits) -> Node:
    """Bound, in place, what `node` leaves open (see `StepLimits`), forbid undeclared keys; return `node`.

    Strings get `maxLength`, arrays `maxItems`, integers at most `limits.int_digits` digits, maps
    (`dict[str, X]`) a key length and a size, and required strings `minLength` 1. A user's own
    bounds, enums, constants and patterns are kept.

    Example:
        >>> from agentkit.steps import StepLimits
        >>> bound_schema({"type": "integer", "minimum": 0}, StepLimits(int_digits=3))
        {'type': 'integer', 'minimum': 0, 'maximum': 999}
        >>> bound_schema({"type": "object", "additionalProperties": {"type": "number"}}, StepLimits(key_chars=8, array_items=4))
        {'type': 'object', 'additionalProperties': False, 'patternProperties': {'^.{0,8}$': {'type': 'number'}}, 'maxProperties': 4}
    """
    if isinstance(node, dict):
        kind = node.get("type")
        if kind == "string" and not {"maxLength", "enum", "const", "pattern", "format"} & node.keys():
            node["maxLength"] = max(limits.string_chars, node.get("minLength", 0))
        if kind == "integer" and not {"enum", "const"} & node.keys():
            largest = 10**limits.int_digits - 1
            low = node.get("minimum", node.get("exclusiveMinimum"))
            high = node.get("maximum", node.get("exclusiveMaximum"))
            if high is None and (low is None or low < largest):  # never below a user's own minimum
                node["maximum"] = largest
            if low is None and (high is None or high > -largest):
                node["minimum"] = -largest
        if kind == "array" and "maxItems" not in node:
            node["maxItems"] = max(limits.array_items, node.get("minItems", 0))
        if kind == "object" and limits.nonempty_strings:
            for name in node.get("required", []):
                prop = node.get("properties", {}).get(name)
                if isinstance(prop, dict) and prop.get("type") == "string" and not {"minLength", "enum", "const", "pattern"} & prop.keys():
                    prop["minLength"] = 1
        if kind == "object" and "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False  # undeclared keys would be ignored anyway; don't let the model invent them
        extra = node.get("additionalProperties")
        if kind == "object" and extra not in (None, False) and not {"properties", "patternProperties"} & node.keys():
            # A map (dict[str, X]): bound its keys' length and its size. (llguidance has no propertyNames.)
            node["patternProperties"] = {f"^.{{0,{limits.key_chars}}}$": extra if isinstance(extra, dict) else {}}
            node["additionalProperties"] = False
            node.setdefault("maxProperties", limits.array_items)
        for key, value in node.items():
            if key in ("properties", "patternProperties", "$defs") and isinstance(value, dict):
                for sub in value.values():
                    bound_schema(sub, limits)
            elif key != "enum" and key != "const":
                bound_schema(value, limits)
    elif isinstance(node, list):
        for item in node:
            bound_schema(item, limits)
    return node


__all__ = ["RESERVED_TOOL_NAMES", "TOOL_NAME", "bound_schema", "tidy_schema", "valid_tool_name"]
