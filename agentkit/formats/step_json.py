"""The `agentkit` step format: a step is one JSON object, for models without a tool format of their own.

A step is either
    {"thought": "...", "calls": [{"name": "<tool>", "arguments": {...}}, ...]}
or
    {"thought": "...", "final_answer": <answer typed by output_type>}

The schema is a discriminated union over the tool names, each with its own argument schema, plus the
final answer. Strings, arrays and map keys that the user's types leave unbounded get bounds in the
*grammar* copy of the schema (`agentkit.schema.bound_schema`) so that a small (or random) model
cannot ramble until the token limit; validation still uses the user's own types.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from agentkit.constraints import JsonSchemaConstraint
from agentkit.errors import ToolDefinitionError
from agentkit.registry import ToolRegistry
from agentkit.schema import bound_schema, tidy_schema
from agentkit.steps import ParsedStep, StepLimits, StepParseError, distinct
from agentkit.types import ToolCall


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

    def constraint(self) -> JsonSchemaConstraint:
        """What holds decoding to this format: the step schema with its grammar bounds (`grammar_schema`)."""
        return JsonSchemaConstraint(json_schema=self.grammar_schema())

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

        answer = tidy_schema(self._output_adapter.json_schema())
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
        bound_schema(final["properties"]["final_answer"], answer_limits)
        for name, sub in schema.get("$defs", {}).items():
            if name.startswith("answer."):
                bound_schema(sub, answer_limits)
        return bound_schema(schema, self.limits)

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
    except Exception as exc:
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
    rewritten: dict[str, Any] = rewrite(schema)
    return rewritten
