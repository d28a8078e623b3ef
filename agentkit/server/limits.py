"""What one request to `agentkit serve` may cost: body size and time, JSON Schema depth and size.

The body is read in pieces and refused as soon as it passes the limit (a declared Content-Length
over it is refused before a byte is read), so no request holds more than `max_body_bytes`. Tool and
response-format schemas are walked without recursion and bounded with their `$ref`s expanded: the
prompt renderer and the grammar compiler recurse over them, so a deep or self-referencing schema
would otherwise exhaust the stack, and a `$ref` fan-out would expand exponentially.

Example:
    >>> deep = {"type": "object"}
    >>> for _ in range(100):
    ...     deep = {"type": "object", "properties": {"x": deep}}
    >>> try:
    ...     check_schema(deep, ServeLimits(), local_refs_only=True)
    ... except ValueError as exc:   # the request model turns it into a 400 naming the field
    ...     print(exc)
    the schema nests deeper than this server's limit of 64 levels ($refs expanded); flatten it (fewer nested objects and arrays)
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any

from starlette.requests import ClientDisconnect, Request

from agentkit.errors import AgentkitError

JSON_TYPES = {"string", "number", "integer", "boolean", "object", "array", "null"}
# JSON Schema keywords by the kind of value they take (the ones agentkit's prompt and grammar read).
SCHEMA_MAPS = {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"}
SCHEMA_LISTS = {"anyOf", "oneOf", "allOf", "prefixItems"}
SCHEMA_ONE = {"items", "not", "if", "then", "else", "contains", "propertyNames", "additionalItems"}
SCHEMA_OR_BOOL = {"additionalProperties", "unevaluatedProperties", "unevaluatedItems"}
COUNTS = {"minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties", "minContains", "maxContains"}
NUMBERS = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"}
STRINGS = {"pattern", "format", "$ref", "description", "title", "$schema", "$id", "$comment"}


class RequestError(AgentkitError):
    """A request the server refuses, with the status code and OpenAI error fields to send back."""

    def __init__(self, message: str, *, status: int = 400, param: str | None = None, code: str | None = None,
                 kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.param, self.code, self.kind = status, param, code, kind

    def body(self) -> dict[str, Any]:
        return {"error": {"message": str(self), "type": self.kind, "param": self.param, "code": self.code}}


@dataclass(frozen=True)
class ServeLimits:
    """Per-request bounds of `agentkit serve` (see `create_app(limits=...)`)."""

    max_body_bytes: int = 4 << 20
    body_timeout_s: float = 30.0  # a client that stops sending mid-body gets a 408, not a held connection
    max_schema_depth: int = 64  # JSON nesting of one schema with its $refs expanded
    max_schema_nodes: int = 5000  # objects and arrays in one schema with its $refs expanded


# -- the body -------------------------------------------------------------------------------------


def check_content_type(request: Request) -> None:
    """Refuse a body declared as anything but JSON (415); none declared is read as JSON, like vLLM."""
    declared = request.headers.get("content-type")
    if declared is None:
        return
    media = declared.split(";", 1)[0].strip().lower()
    if media == "application/json" or (media.startswith("application/") and media.endswith("+json")):
        return
    raise RequestError(
        f"Content-Type {media or declared!r} is not supported: send the request body as JSON with the header "
        "`Content-Type: application/json`.", status=415, code="unsupported_media_type",
    )


async def read_body(request: Request, limits: ServeLimits) -> bytes | None:
    """The body, refused (413) once it passes the limit and (408) if it is not all sent in time.

    None when the client went away while sending it.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limits.max_body_bytes:
        raise _too_large(limits)  # before reading a byte of it
    body = bytearray()

    async def collect() -> None:
        async for piece in request.stream():
            if len(body) + len(piece) > limits.max_body_bytes:
                raise _too_large(limits)  # chunked bodies declare no length: count as they arrive
            body.extend(piece)

    try:
        await asyncio.wait_for(collect(), limits.body_timeout_s)
    except asyncio.TimeoutError:
        raise RequestError(
            f"The request body did not arrive within {limits.body_timeout_s:g} s; send the whole body at once.",
            status=408, code="request_timeout",
        ) from None
    except ClientDisconnect:
        return None
    return bytes(body)


def _too_large(limits: ServeLimits) -> RequestError:
    size = f"{limits.max_body_bytes / (1 << 20):g} MB" if limits.max_body_bytes >= 1 << 20 else f"{limits.max_body_bytes} bytes"
    return RequestError(
        f"The request body is over this server's limit of {size}; send a shorter conversation or smaller images.",
        status=413, code="request_too_large",
    )


# -- JSON Schemas ---------------------------------------------------------------------------------


def check_schema(schema: dict[str, Any], limits: ServeLimits, *, local_refs_only: bool) -> None:
    """Raise `ValueError` (with the fix) if `schema` is malformed, too deep or too big, refs expanded.

    `local_refs_only`: every `$ref` must name an entry of the root `$defs` and none may lead back to
    itself (tool parameters: the prompt renders them by expanding the refs).
    """
    defs = schema.get("$defs", {})
    if not isinstance(defs, dict):
        raise ValueError("$defs must be an object of schemas")
    trees = {None: {k: v for k, v in schema.items() if k != "$defs"}, **{name: sub for name, sub in defs.items()}}
    stats: dict[Any, tuple[int, int, list[tuple[str, int]]]] = {}  # tree -> (depth, nodes, [(ref, at depth)])
    total = 0
    for name, tree in trees.items():
        stats[name] = _walk(tree, limits)
        total += stats[name][1]
        _within(0, total, limits)  # the schema as written, stopping at the first tree past the limit
    if not local_refs_only:  # the grammar compiler takes refs as they are: bound the schema as written
        return _within(max([stats[None][0], *(stats[n][0] + 2 for n in defs)]), 0, limits)
    for _name, (_, _, refs) in stats.items():
        for ref, _ in refs:
            if not (ref.startswith("#/$defs/") and ref[8:] in defs):
                raise ValueError(f"$ref {ref!r} does not name an entry of the schema's $defs; use '#/$defs/<name>'")
    depth, nodes = _expanded(stats, limits)
    _within(depth, nodes, limits)


def _within(depth: int, nodes: int, limits: ServeLimits) -> None:
    if depth > limits.max_schema_depth:
        raise ValueError(
            f"the schema nests deeper than this server's limit of {limits.max_schema_depth} levels ($refs expanded); "
            "flatten it (fewer nested objects and arrays)"
        )
    if nodes > limits.max_schema_nodes:
        raise ValueError(
            f"the schema has more than this server's limit of {limits.max_schema_nodes} objects and arrays ($refs "
            "expanded); send a smaller schema"
        )


def _expanded(stats: dict[Any, tuple[int, int, list[tuple[str, int]]]], limits: ServeLimits) -> tuple[int, int]:
    """Depth and size of the root with every $ref replaced by its target, targets first (Kahn's order).

    A cycle among the refs (a recursive schema) is refused: it has no finite expansion.
    """
    users: dict[Any, list[Any]] = {name: [] for name in stats}  # def -> the trees that refer to it
    waiting = {name: len({ref for ref, _ in refs}) for name, (_, _, refs) in stats.items()}
    for name, (_, _, refs) in stats.items():
        for target in {ref[8:] for ref, _ in refs}:
            users[target].append(name)
    ready = [name for name, count in waiting.items() if count == 0]
    done: dict[Any, tuple[int, int]] = {}
    while ready:
        name = ready.pop()
        depth, nodes, refs = stats[name]
        for ref, at in refs:
            sub_depth, sub_nodes = done[ref[8:]]
            # capped: enough to refuse, and a fan-out of refs cannot grow a huge count
            depth, nodes = max(depth, at - 1 + sub_depth), min(nodes + sub_nodes, limits.max_schema_nodes + 1)
        done[name] = (depth, nodes)
        for user in users[name]:
            waiting[user] -= 1
            if waiting[user] == 0:
                ready.append(user)
    if None not in done:
        looping = sorted(str(n) for n in stats if n is not None and n not in done)
        raise ValueError(
            f"the schema is recursive ($ref cycle through $defs {looping}); this server needs schemas of bounded "
            "depth: write the nesting out to the depth you need"
        )
    return done[None]


def _walk(tree: Any, limits: ServeLimits) -> tuple[int, int, list[tuple[str, int]]]:
    """Depth, node count and $refs of one schema, checking keyword types; iterative (no recursion)."""
    stack: list[tuple[Any, int, bool]] = [(tree, 1, True)]  # (value, depth, is it a schema?)
    depth = nodes = 0
    refs: list[tuple[str, int]] = []
    while stack:
        value, level, is_schema = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("the schema holds a number that is not finite; use finite numbers")
        if is_schema and not isinstance(value, dict):  # the prompt renderer reads every sub-schema as an object
            raise ValueError("every sub-schema must be an object ({} accepts any value)")
        if not isinstance(value, (dict, list)):
            continue
        depth, nodes = max(depth, level), nodes + 1
        if level > limits.max_schema_depth or nodes > limits.max_schema_nodes:
            _within(level, nodes, limits)  # stop early: the rest cannot make it smaller
        if is_schema and isinstance(value, dict):  # (a schema is always a dict by now: checked above)
            if isinstance(value.get("$ref"), str):
                refs.append((value["$ref"], level))
            stack.extend(_children(value, level))
        else:
            items = value.values() if isinstance(value, dict) else value
            stack.extend((item, level + 1, False) for item in items)
    return depth, nodes, refs


def _children(schema: dict[str, Any], level: int) -> list[tuple[Any, int, bool]]:
    """A schema's sub-values to walk, each marked as schema or data, after checking keyword types."""
    children: list[tuple[Any, int, bool]] = []
    for key, value in schema.items():
        if key in SCHEMA_MAPS:
            _expect(isinstance(value, dict), key, "an object of schemas")
            children.append(({}, level + 1, False))  # counts the map itself; its values are schemas
            children.extend((sub, level + 2, True) for sub in value.values())
        elif key in SCHEMA_LISTS:
            _expect(isinstance(value, list) and bool(value), key, "a non-empty list of schemas")
            children.append(([], level + 1, False))  # counts the list itself
            children.extend((sub, level + 2, True) for sub in value)
        elif key in SCHEMA_ONE or (key in SCHEMA_OR_BOOL and not isinstance(value, bool)):
            children.append((value, level + 1, True))
        elif key in COUNTS:
            _expect(isinstance(value, int) and not isinstance(value, bool) and value >= 0, key, "a non-negative integer")
        elif key in NUMBERS:
            _expect(isinstance(value, (int, float)) and not isinstance(value, bool), key, "a number")
            children.append((value, level, False))
        elif key in STRINGS:
            _expect(isinstance(value, str), key, "a string")
        elif key == "required":
            _expect(isinstance(value, list) and all(isinstance(v, str) for v in value), key, "a list of property names")
        elif key == "type":
            kinds = value if isinstance(value, list) else [value]
            _expect(bool(kinds) and all(isinstance(k, str) and k in JSON_TYPES for k in kinds), key, f"one of {sorted(JSON_TYPES)} or a list of them")
        elif key == "enum":
            _expect(isinstance(value, list), key, "a list of values")
            children.append((value, level + 1, False))
        else:  # const, default, examples, unknown keywords: data, bounded like the rest
            children.append((value, level + 1, False))
    return children


def _expect(ok: bool, key: str, what: str) -> None:
    if not ok:
        raise ValueError(f"the schema keyword {key!r} must be {what}")
