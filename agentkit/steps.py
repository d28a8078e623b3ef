"""The step format: the JSON Schema of "the model's next step", and the parser back to typed calls.

A step is one JSON object, either
    {"thought": "...", "calls": [{"name": "<tool>", "arguments": {...}}, ...]}
or
    {"thought": "...", "final_answer": <answer typed by output_type>}

The schema is a discriminated union over the tool names, each with its own argument schema, plus the
final answer. Strings, arrays and map keys that the user's types leave unbounded get bounds in the
*grammar* copy of the schema so that a small (or random) model cannot ramble until the token limit;
validation still uses the user's own types.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from agentkit.errors import ToolDefinitionError
from agentkit.registry import ToolRegistry
from agentkit.tool import _tidy_schema
from agentkit.types import ToolCall


@dataclass(frozen=True)
class StepLimits:
    """Bounds the grammar puts on a step (and how repeated calls are read). Defaults suit small models; raise them for big ones.

    Checks on the calls of a step once it is written are `Agent(step_checks=...)` (`agentkit.checks`).

    thought_chars: length of the optional reasoning field; 0 (the default) leaves it out. Small models
        do better without it (SmolLM2-135M invents results in its thoughts); turn it on for big ones.
    max_calls: tool calls allowed in one step.
    string_chars: default maxLength for tool-argument strings that set none.
    answer_chars: default maxLength for a string final answer (and strings inside `output_type`).
        The `hermes` format, whose answer is lines of prose that calls may follow, splits it: a
        first line of up to half of it and at most three more lines of a sixth each.
    array_items: default maxItems for arrays that set none.
    key_chars: length bound for the keys of maps (`dict[str, X]`).
    int_digits: integers that set no `minimum`/`maximum` get at most this many digits (a small model
        under a grammar otherwise writes 1000000... until the token limit). 18 keeps every int64
        up to 10**18 - 1.
    nonempty_strings: required string arguments get minLength 1 (an empty required string is
        almost always a small model giving up, not a real value).
    distinct_calls: identical calls (same tool, same arguments) in one step are made once. Under a
        grammar a small model tends to repeat its call until `max_calls`; turn this off for tools
        whose repeated call means something (e.g. `roll_die()` twice).
    """

    thought_chars: int = 0
    max_calls: int = 4
    string_chars: int = 300
    answer_chars: int = 600
    array_items: int = 16
    key_chars: int = 40
    int_digits: int = 18
    nonempty_strings: bool = True
    distinct_calls: bool = True


def distinct(calls: list[ToolCall]) -> list[ToolCall]:
    """`calls` without repeats of an earlier call with the same name and arguments.

    Example:
        >>> same = [ToolCall(id=f"c{i}", name="ping", arguments={"host": "a"}) for i in range(3)]
        >>> [c.id for c in distinct(same)]
        ['c0']
    """
    seen: set[str] = set()
    kept = []
    for call in calls:
        key = json.dumps([call.name, call.arguments], sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            kept.append(call)
    return kept


# Compact, deterministic JSON inside grammars: exactly what json.dumps writes by default, so few-shot
# examples rendered with json.dumps look like what the model is forced to write.
JSON_OPTIONS = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}


class StepParseError(ValueError):
    """The text is not a valid step; the message is written for the model to read and fix."""


@dataclass(frozen=True)
class ParsedStep:
    """A step as data: either calls or a final answer."""

    thought: str | None
    calls: list[ToolCall]
    final_answer: Any = None
    is_final: bool = False


class StepFormat:
    """Builds the step schema for a tool set and parses model output against it.

    Example:
        >>> from agentkit.tools import calculator
        >>> fmt = StepFormat(ToolRegistry([calculator]))
        >>> step = fmt.parse('{"thought": "Multiply.", "calls": [{"name": "calculator", '
        ...                  '"arguments": {"expression": "17 * 23"}}]}', step_index=1)
        >>> step.calls[0].arguments
        {'expression': '17 * 23'}
    """

    def __init__(
        self,
        registry: ToolRegistry,
        output_type: Any = str,
        limits: StepLimits | None = None,
    ) -> None:
        self.registry = registry
        self.output_type = output_type
        self.limits = limits or StepLimits()
        self._output_adapter = output_adapter(output_type)
        self.schema = self._build_schema()
        self.schema_hash = hashlib.sha256(json.dumps(self.schema, sort_keys=True).encode()).hexdigest()[:16]

    name = "agentkit"

    def constraint(self) -> dict[str, Any]:
        """The request fields that hold decoding to this format: `{"json_schema": ...}`."""
        return {"json_schema": self.grammar_schema()}

    def call_shape(self) -> str:
        """How a call step looks, for prompts."""
        thought = '"thought": "...", ' if self.limits.thought_chars else ""
        return '{' + thought + '"calls": [{"name": "<tool>", "arguments": {...}}]}'

    def answer_shape(self) -> str:
        """How a final-answer step looks, for prompts."""
        thought = '"thought": "...", ' if self.limits.thought_chars else ""
        return '{' + thought + '"final_answer": ...}'

    # -- schema ----------------------------------------------------------------------------------

    def _build_schema(self) -> dict[str, Any]:
        limits = self.limits
        defs: dict[str, Any] = {}
        thought = {"thought": {"type": "string", "maxLength": limits.thought_chars}} if limits.thought_chars else {}
        branches: list[dict[str, Any]] = []

        call_variants = tool_call_variants(self.registry, "arguments", into=defs)
        if call_variants:
            branches.append(
                _object(
                    {
                        **thought,
                        "calls": {
                            "type": "array",
                            "items": {"anyOf": call_variants} if len(call_variants) > 1 else call_variants[0],
                            "minItems": 1,
                            "maxItems": limits.max_calls,
                        },
                    }
                )
            )

        answer = _tidy_schema(self._output_adapter.json_schema())
        answer = _hoist_defs(answer, prefix="answer.", into=defs)
        if answer.get("type") == "string" and "maxLength" not in answer:
            answer = {**answer, "maxLength": limits.answer_chars}
        branches.append(_object({**thought, "final_answer": answer}))

        schema: dict[str, Any] = {"anyOf": branches} if len(branches) > 1 else branches[0]
        if defs:
            schema = {**schema, "$defs": defs}
        return schema

    def grammar_schema(self) -> dict[str, Any]:
        """The schema the decoder enforces: `schema` with default bounds on unbounded values."""
        schema = copy.deepcopy(self.schema)
        # Strings inside the final answer are bounded by answer_chars, not string_chars (see StepLimits).
        answer_limits = dataclasses.replace(self.limits, string_chars=self.limits.answer_chars)
        final = schema["anyOf"][-1] if "anyOf" in schema else schema
        _bound(final["properties"]["final_answer"], answer_limits)
        for name, sub in schema.get("$defs", {}).items():
            if name.startswith("answer."):
                _bound(sub, answer_limits)
        return _bound(schema, self.limits)

    # -- parsing ---------------------------------------------------------------------------------

    def parse(self, text: str, *, step_index: int) -> ParsedStep:
        """Parse model output into calls or a final answer; raise `StepParseError` explaining the fix."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise StepParseError(f"The reply is not valid JSON ({exc.msg} at character {exc.pos}).") from None
        if not isinstance(data, dict):
            raise StepParseError("The reply must be one JSON object with \"calls\" or \"final_answer\".")
        thought = data.get("thought")
        if thought is not None and not isinstance(thought, str):
            raise StepParseError("\"thought\" must be a string.")
        has_calls, has_answer = "calls" in data, "final_answer" in data
        if has_calls == has_answer:
            raise StepParseError("The reply must have exactly one of \"calls\" or \"final_answer\".")
        if has_answer:
            try:
                answer = self._output_adapter.validate_python(data["final_answer"])
            except ValidationError as exc:
                raise StepParseError(f"\"final_answer\" does not match the required type: {exc.errors(include_url=False)[0]['msg']}.") from None
            return ParsedStep(thought=thought, calls=[], final_answer=answer, is_final=True)

        raw_calls = data["calls"]
        if not isinstance(raw_calls, list) or not raw_calls:
            raise StepParseError("\"calls\" must be a non-empty list of {\"name\": ..., \"arguments\": {...}}.")
        calls = []
        for i, raw in enumerate(raw_calls):
            if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
                raise StepParseError(f"calls[{i}] must be an object with a string \"name\".")
            arguments = raw.get("arguments", {})
            if not isinstance(arguments, dict):
                raise StepParseError(f"calls[{i}].arguments must be an object.")
            calls.append(ToolCall(id=f"call_{step_index}_{i}", name=raw["name"], arguments=arguments))
        return ParsedStep(thought=thought, calls=distinct(calls) if self.limits.distinct_calls else calls)

    def render(self, step: ParsedStep) -> str:
        """Serialise a step exactly as the grammar makes the model write it (for few-shot examples)."""
        data: dict[str, Any] = {}
        if self.limits.thought_chars and step.thought is not None:
            data["thought"] = step.thought
        if step.is_final:
            answer = step.final_answer
            data["final_answer"] = answer.model_dump(mode="json") if isinstance(answer, BaseModel) else answer
        else:
            data["calls"] = [{"name": c.name, "arguments": c.arguments} for c in step.calls]
        return json.dumps(data, ensure_ascii=False)


def tool_call_variants(registry: ToolRegistry, arguments_key: str, *, into: dict[str, Any]) -> list[dict[str, Any]]:
    """One schema per tool for a call object `{"name": <tool>, <arguments_key>: {...}}`; `$defs` go to `into`."""
    return [
        {
            "type": "object",
            "properties": {"name": {"const": t.name}, arguments_key: _hoist_defs(t.parameters, prefix=f"{t.name}.", into=into)},
            "required": ["name", arguments_key],
            "additionalProperties": False,
        }
        for t in registry
    ]


def output_adapter(output_type: Any) -> TypeAdapter[Any]:
    """A validator for final answers of `output_type`; `ToolDefinitionError` if it has no JSON Schema."""
    try:
        adapter: TypeAdapter[Any] = TypeAdapter(output_type)
        adapter.json_schema()
    except Exception as exc:  # noqa: BLE001 - pydantic raises several types for schema-less types
        name = getattr(output_type, "__name__", repr(output_type))
        raise ToolDefinitionError(
            f"output_type={name} has no JSON Schema ({type(exc).__name__}), so the final answer cannot be "
            "constrained. Use str, a pydantic model, or a list/dict/Literal of plain types."
        ) from exc
    return adapter


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


def _hoist_defs(schema: dict[str, Any], *, prefix: str, into: dict[str, Any]) -> dict[str, Any]:
    """Move a sub-schema's `$defs` to the top level under unique names, rewriting its `$ref`s."""
    schema = copy.deepcopy(schema)
    local = schema.pop("$defs", {})
    if not local:
        return schema
    renamed = {name: f"{prefix}{name}" for name in local}

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/") and ref[8:] in renamed:
                node = {**node, "$ref": f"#/$defs/{renamed[ref[8:]]}"}
            return {k: rewrite(v) for k, v in node.items()}
        if isinstance(node, list):
            return [rewrite(item) for item in node]
        return node

    for name, sub in local.items():
        into[renamed[name]] = rewrite(sub)
    return rewrite(schema)


def _bound(node: Any, limits: StepLimits) -> Any:
    """Add maxLength / maxItems / key / integer bounds where the schema leaves them open; forbid undeclared keys."""
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
                    _bound(sub, limits)
            elif key != "enum" and key != "const":
                _bound(value, limits)
    elif isinstance(node, list):
        for item in node:
            _bound(item, limits)
    return node
