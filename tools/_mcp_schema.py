"""Remote (MCP) tool names and schemas made fit for agentkit: valid tool names, grammar-safe schemas.

A remote server's `inputSchema` is arbitrary JSON Schema. agentkit embeds every tool's schema in one
step schema (`StepFormat`) that llguidance compiles into a grammar, which means:

- `$ref`s must resolve inside the step schema: `definitions` become `$defs` (which `StepFormat`
  hoists), and refs to other places in the tool's schema (`#`, `#/properties/...`) point at copies
  put in `$defs`. Refs to other documents cannot be followed and become "anything".
- keywords llguidance does not implement (`not`, `if`/`then`, `uniqueItems`, `propertyNames`...),
  formats it does not know and regex patterns with look-around are dropped from the *grammar* copy.
  The client still validates the arguments against the server's full schema before each call.
- pydantic-style `title`s are dropped (prompt tokens that tell the model nothing), and an object with
  no declared properties gets `"properties": {}` so the grammar makes the model send `{}`.

Example:
    >>> safe_tool_name("github.search-issues", prefix="gh_")
    'gh_github_search-issues'
    >>> schema = {"type": "object", "properties": {"tags": {"type": "array", "uniqueItems": True,
    ...           "items": {"$ref": "#/definitions/Tag"}}}, "definitions": {"Tag": {"type": "string"}}}
    >>> grammar_safe_schema(schema)
    {'type': 'object', 'properties': {'tags': {'type': 'array', 'items': {'$ref': '#/$defs/Tag'}}}, '$defs': {'Tag': {'type': 'string'}}}
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Callable
from typing import Any

from agentkit.errors import ToolDefinitionError
from agentkit.schema import RESERVED_TOOL_NAMES, tidy_schema, valid_tool_name

# Keywords llguidance rejects ("Unimplemented keys"): dropped from the grammar copy only.
_UNSUPPORTED_KEYWORDS = frozenset(
    {
        "not", "if", "then", "else", "dependentRequired", "dependentSchemas", "dependencies", "uniqueItems",
        "contains", "minContains", "maxContains", "propertyNames", "unevaluatedProperties", "unevaluatedItems",
    }
)
# String formats llguidance knows; any other "format" fails the grammar ("Unknown format").
_KNOWN_FORMATS = frozenset({"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid", "uri"})
# Regex features llguidance's engine lacks: look-around and back-references.
_UNSUPPORTED_REGEX = re.compile(r"\(\?<?[=!]|\\[1-9]|\\k<")
# Keys whose value is one subschema, a list of subschemas, or a name -> subschema map.
_SUBSCHEMA = ("items", "additionalProperties", "additionalItems", "not", "if", "then", "else", "contains",
              "propertyNames", "unevaluatedProperties", "unevaluatedItems")
_SUBSCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems", "items")
_SUBSCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_ROOT_ONLY = ("$schema", "$id", "$comment")


def safe_tool_name(remote_name: str, prefix: str = "") -> str:
    """`prefix + remote_name`, made a valid agentkit tool name (letters, digits, '_' or '-', at most 64).

    Other characters become '_'; a name that would start with a digit or '-' gets a leading '_'; a
    name over 64 characters is cut and ends with a short hash of the full name, so it stays unique.

    Example:
        >>> safe_tool_name("read file"), safe_tool_name("2fa", prefix="")
        ('read_file', '_2fa')
    """
    name = re.sub(r"[^A-Za-z0-9_-]", "_", prefix + remote_name)
    if not name or not (name[0].isascii() and (name[0].isalpha() or name[0] == "_")):
        name = "_" + name
    if len(name) > 64:
        digest = hashlib.sha256((prefix + remote_name).encode()).hexdigest()[:8]
        name = f"{name[:55]}_{digest}"
    if not valid_tool_name(name):
        raise ToolDefinitionError(
            f"The MCP tool {remote_name!r} cannot be named {name!r} in agentkit ({sorted(RESERVED_TOOL_NAMES)} "
            "are reserved). Pass prefix='...' to MCPClient to rename the server's tools."
        )
    return name


def grammar_safe_schema(schema: Any, *, tool_name: str = "tool") -> dict[str, Any]:
    """A copy of a remote tool's input schema that `StepFormat` and llguidance can compile (see module doc)."""
    if not isinstance(schema, dict):
        raise ToolDefinitionError(f"The MCP tool {tool_name!r} has an input schema that is not a JSON object: {schema!r}.")
    schema = {k: v for k, v in copy.deepcopy(schema).items() if k not in _ROOT_ONLY}
    kind = schema.setdefault("type", "object")
    if kind != "object":
        raise ToolDefinitionError(
            f"The MCP tool {tool_name!r} takes {kind!r} arguments; MCP tools take an object (\"type\": \"object\")."
        )
    if not {"properties", "additionalProperties", "patternProperties", "anyOf", "oneOf", "allOf", "$ref"} & schema.keys():
        schema["properties"] = {}  # takes no arguments: the grammar then makes the model write {}
    tidy: dict[str, Any] = tidy_schema(_strip_unsupported(_localise_refs(schema)))
    return tidy


def schema_without_remote_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with every `$ref` to another document removed (validators must never go and fetch it)."""
    return _map_subschemas(copy.deepcopy(schema), _drop_remote_ref)


# -- internals --------------------------------------------------------------------------------------


_SchemaMap = Callable[[dict[str, Any]], dict[str, Any]]


def _map_subschemas(node: dict[str, Any], fn: _SchemaMap) -> dict[str, Any]:
    """Apply `fn` to every (sub)schema dict, children first; data keywords (enum, default...) are left alone."""
    for key in _SUBSCHEMA_MAPS:
        if isinstance(node.get(key), dict):
            node[key] = {name: _map_if_schema(sub, fn) for name, sub in node[key].items()}
    for key in set(_SUBSCHEMA) | set(_SUBSCHEMA_LISTS):
        value = node.get(key)
        if isinstance(value, dict):
            node[key] = _map_subschemas(value, fn)
        elif isinstance(value, list) and key in _SUBSCHEMA_LISTS:
            node[key] = [_map_if_schema(sub, fn) for sub in value]
    return fn(node)


def _map_if_schema(node: Any, fn: _SchemaMap) -> Any:
    """`_map_subschemas` of a dict; any other JSON value (a boolean schema such as `true`...) as it is."""
    return _map_subschemas(node, fn) if isinstance(node, dict) else node


def _drop_remote_ref(node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and not ref.startswith("#"):
        node = {k: v for k, v in node.items() if k != "$ref"}
    return node


def _strip_unsupported(schema: dict[str, Any]) -> dict[str, Any]:
    def strip(node: dict[str, Any]) -> dict[str, Any]:
        for key in _UNSUPPORTED_KEYWORDS & node.keys():
            del node[key]
        if isinstance(node.get("format"), str) and node["format"] not in _KNOWN_FORMATS:
            del node["format"]
        if isinstance(node.get("pattern"), str) and _UNSUPPORTED_REGEX.search(node["pattern"]):
            del node["pattern"]
        return node

    return _map_subschemas(schema, strip)


def _localise_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """Make every `$ref` a `#/$defs/NAME` of this schema's own top-level `$defs` (or drop it)."""
    original = copy.deepcopy(schema)
    defs: dict[str, Any] = dict(schema.pop("definitions", None) or {})
    defs.update(schema.pop("$defs", None) or {})
    names: dict[str, str] = {}  # JSON pointer -> name in defs, for pointers not already in $defs
    pending: list[tuple[str, str]] = []

    def target(ref: str) -> str | None:
        for root in ("#/$defs/", "#/definitions/"):
            if ref.startswith(root) and "/" not in ref[len(root):]:
                name = _unescape(ref[len(root):])
                if name in defs:
                    return name
        if ref not in names:
            names[ref] = f"_ref{len(names) + 1}" if ref != "#" else "_root"
            pending.append((ref, names[ref]))
        return names[ref]

    def rewrite(node: dict[str, Any]) -> dict[str, Any]:
        ref = node.get("$ref")
        if not isinstance(ref, str):
            return node
        if not ref.startswith("#"):
            return {k: v for k, v in node.items() if k != "$ref"}  # another document: not followed
        name = target(ref)
        return {**node, "$ref": f"#/$defs/{name}"}

    schema = _map_subschemas(schema, rewrite)
    defs = {name: _map_if_schema(sub, rewrite) for name, sub in defs.items()}
    while pending:
        ref, name = pending.pop()
        if ref == "#":
            defs[name] = None  # filled in below, once the root is rewritten
            continue
        found = _resolve_pointer(original, ref[1:])
        defs[name] = _map_if_schema(copy.deepcopy(found), rewrite) if found is not None else {}
    if "_root" in defs and defs["_root"] is None:
        defs["_root"] = copy.deepcopy(schema)
    if defs:
        schema["$defs"] = defs
    return schema


def _resolve_pointer(document: Any, pointer: str) -> Any:
    node = document
    for part in pointer.split("/")[1:]:
        part = _unescape(part)
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _unescape(part: str) -> str:
    return part.replace("~1", "/").replace("~0", "~")
