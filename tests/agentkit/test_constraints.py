"""`GenerationRequest.constraint`: one tagged type (JSON Schema | Lark | none), compiled with its own whitespace options."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from agentkit import Agent, GenerationRequest, JsonSchemaConstraint, LarkConstraint, Message
from agentkit.formats import make_tool_format
from agentkit.registry import ToolRegistry
from agentkit.testing import ScriptedBackend
from agentkit.tools import calculator

HI = [Message(role="user", content="hi")]


@pytest.mark.parametrize(
    "constraint",
    [
        JsonSchemaConstraint(json_schema={"type": "object", "properties": {"n": {"type": "integer"}}}, item_separator=","),
        LarkConstraint(grammar='start: "yes" | "no"'),
        None,
    ],
    ids=["json_schema", "lark", "none"],
)
def test_a_request_round_trips_through_json_with_its_constraint(constraint):
    request = GenerationRequest(messages=HI, constraint=constraint)
    again = GenerationRequest.model_validate_json(request.model_dump_json())
    assert again == request and type(again.constraint) is type(constraint)
    assert GenerationRequest.model_validate(json.loads(request.model_dump_json())).constraint == constraint


def test_a_constraint_given_as_a_dict_is_read_by_its_kind():
    request = GenerationRequest.model_validate({"messages": [], "constraint": {"kind": "lark", "grammar": 'start: "x"'}})
    assert request.constraint == LarkConstraint(grammar='start: "x"')


@pytest.mark.parametrize("given", [{"json_schema": {"type": "object"}}, {"kind": "regex", "pattern": "a+"}, "start: a"])
def test_a_constraint_without_a_known_kind_names_both_forms(given):
    with pytest.raises(ValidationError) as caught:
        GenerationRequest.model_validate({"messages": [], "constraint": given})
    message = str(caught.value)
    assert "kind 'json_schema'" in message and "kind 'lark'" in message
    assert "JsonSchemaConstraint(json_schema=...)" in message and "LarkConstraint(grammar=...)" in message


def test_the_old_request_fields_are_refused_not_ignored():
    # Dropped in silence, json_schema= would have meant free decoding: a request that looks constrained but is not.
    with pytest.raises(ValidationError, match="json_schema"):
        GenerationRequest(messages=HI, json_schema={"type": "object"})
    with pytest.raises(ValidationError, match="whitespace_flexibel"):
        JsonSchemaConstraint(json_schema={}, whitespace_flexibel=True)


def test_each_format_gives_its_own_kind_of_constraint():
    registry = ToolRegistry([calculator])
    step = make_tool_format("agentkit", registry).constraint()
    assert isinstance(step, JsonSchemaConstraint) and step.json_schema == make_tool_format("agentkit", registry).grammar_schema()
    for name in ("hermes", "llama3_json", "pythonic"):
        fmt = make_tool_format(name, registry)
        assert fmt.constraint() == LarkConstraint(grammar=fmt.grammar), name


def test_a_native_tool_convention_picks_its_format_and_an_unknown_one_the_step_format():
    class Convention(ScriptedBackend):
        tool_call_convention: str | None = None

    hermes, mistral = Convention([]), Convention([])
    hermes.tool_call_convention, mistral.tool_call_convention = "hermes", "mistral"
    assert Agent(hermes, tools=[calculator]).tool_format.name == "hermes"
    assert Agent(mistral, tools=[calculator]).tool_format.name == "agentkit"  # no format of ours speaks it
    assert Agent(ScriptedBackend([]), tools=[calculator]).tool_format.name == "agentkit"


# -- the engine's compiler -------------------------------------------------------------------------


def _accepts(compiler, constraint, text: str) -> bool:
    matcher = compiler.matcher(constraint)
    return all(matcher.consume_token(t) for t in compiler.tokenizer.tokenize_str(text)) and matcher.is_accepting()


@pytest.fixture(scope="module")
def compiler(smollm2_tokenizer):
    pytest.importorskip("llguidance")
    from agentkit.engine.grammar import GrammarCompiler

    return GrammarCompiler(smollm2_tokenizer)


POINT = {"type": "object", "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}}, "required": ["x", "y"]}


def test_the_default_whitespace_is_exactly_what_json_dumps_writes(compiler):
    compact = JsonSchemaConstraint(json_schema=POINT)
    assert _accepts(compiler, compact, json.dumps({"x": 1, "y": 2}))
    assert not _accepts(compiler, compact, '{"x":1,"y":2}')
    assert not _accepts(compiler, compact, '{ "x": 1, "y": 2 }')


def test_the_compiler_honours_each_constraints_whitespace_options(compiler):
    tight = JsonSchemaConstraint(json_schema=POINT, item_separator=",", key_separator=":")
    assert _accepts(compiler, tight, '{"x":1,"y":2}') and not _accepts(compiler, tight, '{"x": 1, "y": 2}')
    loose = JsonSchemaConstraint(json_schema=POINT, whitespace_flexible=True)
    assert all(_accepts(compiler, loose, text) for text in ['{"x":1,"y":2}', '{\n  "x" : 1,\n  "y": 2\n}', json.dumps({"x": 1, "y": 2})])


def test_equal_constraints_compile_once_and_different_options_compile_apart(compiler):
    before = compiler.compilations
    schema = {"type": "array", "items": {"type": "integer"}, "maxItems": 7}
    compiler.grammar(JsonSchemaConstraint(json_schema=schema))
    compiler.grammar(JsonSchemaConstraint(json_schema=json.loads(json.dumps(schema))))  # equal, another object
    assert compiler.compilations == before + 1
    compiler.grammar(JsonSchemaConstraint(json_schema=schema, item_separator=","))
    assert compiler.compilations == before + 2
    lark = LarkConstraint(grammar='start: "[" "]"')
    compiler.grammar(lark)
    compiler.grammar(LarkConstraint(grammar='start: "[" "]"'))
    assert compiler.compilations == before + 3 and _accepts(compiler, lark, "[]")
