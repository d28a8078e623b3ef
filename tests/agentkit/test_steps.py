"""`StepFormat`: the step schema over a tool set, its grammar copy, and the parser back to calls."""

from __future__ import annotations

import copy
import json
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, Field

from agentkit import StepFormat, StepLimits, ToolCall, ToolRegistry, tool
from agentkit.steps import ParsedStep, StepParseError
from agentkit.tools import calculator


class Point(BaseModel):
    x: int
    y: int


class Box(BaseModel):
    low: Point
    high: Point


class Report(BaseModel):
    summary: str
    points: list[str]
    score: float = Field(ge=0, le=10)


@tool
def place(at: Point, tags: list[str], note: str = "") -> str:
    """Place a marker."""
    return "ok"


@tool
def draw(box: Box, label: str, meta: dict[str, int] | None = None) -> str:
    """Draw a box."""
    return "ok"


@tool
def convert(amount: float, unit: Literal["km", "mi"]) -> float:
    """Convert."""
    return amount


def _branches(schema: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    calls, final = schema["anyOf"]
    return calls, final


def _variants(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    items = _branches(schema)[0]["properties"]["calls"]["items"]
    variants = items.get("anyOf", [items])
    return {v["properties"]["name"]["const"]: v for v in variants}


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = schema["$defs"][node["$ref"].removeprefix("#/$defs/")]
    return node


# -- schema ---------------------------------------------------------------------------------------


def test_schema_is_calls_or_final_answer_with_one_branch_per_tool():
    fmt = StepFormat(ToolRegistry([calculator, convert, place]))
    calls, final = _branches(fmt.schema)
    assert calls["required"] == ["calls"] and calls["additionalProperties"] is False
    assert final["required"] == ["final_answer"] and final["additionalProperties"] is False
    array = calls["properties"]["calls"]
    assert array["type"] == "array" and array["minItems"] == 1 and array["maxItems"] == StepLimits().max_calls
    variants = _variants(fmt.schema)
    assert list(variants) == ["calculator", "convert", "place"]
    for name, variant in variants.items():
        assert variant["properties"]["name"] == {"const": name}
        assert variant["required"] == ["name", "arguments"]
        assert variant["additionalProperties"] is False
    # Each branch carries its own tool's argument schema.
    assert variants["convert"]["properties"]["arguments"]["properties"]["unit"]["enum"] == ["km", "mi"]
    assert variants["calculator"]["properties"]["arguments"]["required"] == ["expression"]


def test_single_tool_needs_no_any_of_over_calls():
    fmt = StepFormat(ToolRegistry([calculator]))
    items = _branches(fmt.schema)[0]["properties"]["calls"]["items"]
    assert items["properties"]["name"] == {"const": "calculator"}


def test_no_tools_leaves_only_the_final_answer():
    fmt = StepFormat(ToolRegistry([]))
    assert "anyOf" not in fmt.schema
    assert fmt.schema["required"] == ["final_answer"]
    with pytest.raises(StepParseError):
        fmt.parse('{"calls": []}', step_index=1)


def test_string_final_answer_is_bounded_by_answer_chars():
    fmt = StepFormat(ToolRegistry([calculator]), limits=StepLimits(answer_chars=77))
    assert _branches(fmt.schema)[1]["properties"]["final_answer"] == {"type": "string", "maxLength": 77}


def test_thought_field_only_when_enabled():
    assert "thought" not in _branches(StepFormat(ToolRegistry([calculator])).schema)[0]["properties"]
    fmt = StepFormat(ToolRegistry([calculator]), limits=StepLimits(thought_chars=50))
    for branch in _branches(fmt.schema):
        assert branch["properties"]["thought"] == {"type": "string", "maxLength": 50}
        assert "thought" in branch["required"]


def test_structured_output_type_schema():
    fmt = StepFormat(ToolRegistry([calculator]), output_type=Report)
    answer = _resolve(fmt.schema, _branches(fmt.schema)[1]["properties"]["final_answer"])
    assert answer["required"] == ["summary", "points", "score"]
    assert answer["properties"]["score"]["maximum"] == 10
    assert "title" not in answer


def test_nested_defs_from_two_tools_are_hoisted_without_collision():
    @tool
    def other_place(at: Point) -> str:  # a second tool whose schema also defines "Point"
        """Place elsewhere."""
        return "ok"

    fmt = StepFormat(ToolRegistry([place, draw, other_place]), output_type=Box)
    defs = fmt.schema["$defs"]
    assert {"place.Point", "draw.Box", "draw.Point", "other_place.Point", "answer.Point"} <= set(defs)
    text = json.dumps(fmt.schema)
    # No tool keeps a $defs of its own, and every $ref points at a hoisted definition.
    variants = _variants(fmt.schema)
    for variant in variants.values():
        assert "$defs" not in variant["properties"]["arguments"]
    for ref in {part.split('"')[0] for part in text.split('"$ref": "#/$defs/')[1:]}:
        assert ref in defs, ref
    assert variants["place"]["properties"]["arguments"]["properties"]["at"] == {"$ref": "#/$defs/place.Point"}
    assert defs["draw.Box"]["properties"]["low"] == {"$ref": "#/$defs/draw.Point"}
    assert variants["other_place"]["properties"]["arguments"]["properties"]["at"] == {"$ref": "#/$defs/other_place.Point"}
    # The tools' own schemas are left alone.
    assert place.parameters["properties"]["at"] == {"$ref": "#/$defs/Point"}
    assert "Point" in place.parameters["$defs"]


def test_schema_hash_is_stable_and_tracks_the_tools():
    a = StepFormat(ToolRegistry([calculator, convert]))
    assert a.schema_hash == StepFormat(ToolRegistry([calculator, convert])).schema_hash
    assert a.schema_hash != StepFormat(ToolRegistry([calculator])).schema_hash
    assert a.schema_hash != StepFormat(ToolRegistry([calculator, convert]), output_type=int).schema_hash


# -- grammar schema -------------------------------------------------------------------------------


def test_grammar_schema_bounds_unbounded_strings_and_arrays_without_touching_schema():
    limits = StepLimits(string_chars=33, array_items=5, key_chars=9, int_digits=4)
    fmt = StepFormat(ToolRegistry([place, draw, convert]), limits=limits)
    before = copy.deepcopy(fmt.schema)
    grammar = fmt.grammar_schema()
    assert fmt.schema == before  # the schema itself is unchanged
    assert grammar != fmt.schema

    variants = _variants(grammar)
    place_args = variants["place"]["properties"]["arguments"]["properties"]
    assert place_args["tags"]["maxItems"] == 5
    assert place_args["tags"]["items"]["maxLength"] == 33
    assert place_args["note"]["maxLength"] == 33
    draw_args = variants["draw"]["properties"]["arguments"]["properties"]
    assert draw_args["label"]["maxLength"] == 33
    assert draw_args["label"]["minLength"] == 1  # required strings may not be empty
    assert "minLength" not in place_args["note"]  # optional ones may
    # A map's keys and size are bounded too.
    mapping = next(b for b in draw_args["meta"]["anyOf"] if b.get("type") == "object")
    assert mapping["patternProperties"] == {"^.{0,9}$": {"type": "integer", "maximum": 9999, "minimum": -9999}}
    assert mapping["additionalProperties"] is False and mapping["maxProperties"] == 5
    # Enums and consts are not given string bounds.
    convert_args = variants["convert"]["properties"]["arguments"]["properties"]
    assert "maxLength" not in convert_args["unit"]
    assert "maxLength" not in variants["convert"]["properties"]["name"]
    # Nested model definitions are closed to undeclared keys.
    assert grammar["$defs"]["place.Point"]["additionalProperties"] is False
    # Nothing string- or array-typed is left unbounded anywhere.
    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "string" and not {"enum", "const"} & node.keys():
                assert "maxLength" in node, node
            if node.get("type") == "array":
                assert "maxItems" in node, node
            for key, value in node.items():
                if key not in ("enum", "const", "default"):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(grammar)


def test_grammar_keeps_bounds_the_user_set():
    @tool
    def post(
        title: Annotated[str, Field(max_length=10)],
        body: Annotated[str, Field(min_length=500)],
        tags: Annotated[list[str], Field(min_length=20)],
    ) -> str:
        """Post."""
        return "ok"

    args = _variants(StepFormat(ToolRegistry([post])).grammar_schema())["post"]["properties"]["arguments"]["properties"]
    assert args["title"]["maxLength"] == 10
    # A default bound never makes a user's minimum unsatisfiable.
    assert args["body"]["maxLength"] >= args["body"]["minLength"] == 500
    assert args["tags"]["maxItems"] >= args["tags"]["minItems"] == 20


def test_integers_get_a_digit_bound_that_respects_the_users_own_bounds():
    @tool
    def pick(
        count: int,
        page: Annotated[int, Field(ge=1)],
        huge: Annotated[int, Field(ge=10**30)],
        level: Annotated[int, Field(le=3)],
        ratio: float,
    ) -> str:
        """Pick."""
        return "ok"

    args = _variants(StepFormat(ToolRegistry([pick])).grammar_schema())["pick"]["properties"]["arguments"]["properties"]
    assert (args["count"]["minimum"], args["count"]["maximum"]) == (-(10**18 - 1), 10**18 - 1)
    assert (args["page"]["minimum"], args["page"]["maximum"]) == (1, 10**18 - 1)
    assert args["huge"]["minimum"] == 10**30 and "maximum" not in args["huge"]  # never made unsatisfiable
    assert (args["level"]["minimum"], args["level"]["maximum"]) == (-(10**18 - 1), 3)
    assert "maximum" not in args["ratio"]  # floats keep exponents (6.02e23) and are left alone


def test_grammar_bounds_strings_inside_the_output_type_by_answer_chars():
    limits = StepLimits(string_chars=30, answer_chars=900)
    fmt = StepFormat(ToolRegistry([calculator]), output_type=Report, limits=limits)
    grammar = fmt.grammar_schema()
    answer = _resolve(grammar, _branches(grammar)[1]["properties"]["final_answer"])
    assert answer["properties"]["summary"]["maxLength"] == 900
    assert answer["properties"]["points"]["items"]["maxLength"] == 900
    assert _variants(grammar)["calculator"]["properties"]["arguments"]["properties"]["expression"]["maxLength"] == 30


# -- parsing --------------------------------------------------------------------------------------


@pytest.fixture
def fmt() -> StepFormat:
    return StepFormat(ToolRegistry([calculator, convert]))


def test_parse_calls(fmt):
    step = fmt.parse(
        '{"calls": [{"name": "calculator", "arguments": {"expression": "1+1"}}, '
        '{"name": "convert", "arguments": {"amount": 3, "unit": "km"}}]}',
        step_index=4,
    )
    assert step.is_final is False and step.final_answer is None and step.thought is None
    assert step.calls == [
        ToolCall(id="call_4_0", name="calculator", arguments={"expression": "1+1"}),
        ToolCall(id="call_4_1", name="convert", arguments={"amount": 3, "unit": "km"}),
    ]


def test_parse_final_answer_and_thought(fmt):
    step = fmt.parse('{"thought": "Done.", "final_answer": "391"}', step_index=2)
    assert (step.is_final, step.final_answer, step.thought, step.calls) == (True, "391", "Done.", [])


def test_parse_call_without_arguments_gets_empty_arguments(fmt):
    assert fmt.parse('{"calls": [{"name": "calculator"}]}', step_index=1).calls[0].arguments == {}


def test_parse_structured_answer_gives_a_model_instance():
    fmt = StepFormat(ToolRegistry([calculator]), output_type=Report)
    step = fmt.parse('{"final_answer": {"summary": "ok", "points": ["a"], "score": 7}}', step_index=1)
    assert isinstance(step.final_answer, Report) and step.final_answer.score == 7.0


@pytest.mark.parametrize(
    ("text", "words"),
    [
        pytest.param("I think the answer is 391", ["not valid JSON", "character"], id="not-json"),
        pytest.param('{"final_answer": "391"', ["not valid JSON"], id="truncated-json"),
        pytest.param('["final_answer"]', ["one JSON object"], id="not-an-object"),
        pytest.param('{"calls": [], "final_answer": "x"}', ["exactly one", "calls", "final_answer"], id="both"),
        pytest.param('{"thought": "hm"}', ["exactly one", "calls", "final_answer"], id="neither"),
        pytest.param('{"calls": {"name": "calculator"}}', ['"calls" must be a non-empty list'], id="calls-not-a-list"),
        pytest.param('{"calls": []}', ['"calls" must be a non-empty list'], id="calls-empty"),
        pytest.param('{"calls": ["calculator"]}', ["calls[0]", '"name"'], id="call-not-an-object"),
        pytest.param('{"calls": [{"arguments": {}}]}', ["calls[0]", '"name"'], id="call-without-name"),
        pytest.param('{"calls": [{"name": "calculator", "arguments": "1+1"}]}', ["calls[0].arguments", "object"], id="arguments-not-object"),
        pytest.param('{"thought": 3, "final_answer": "x"}', ['"thought" must be a string'], id="thought-not-string"),
        pytest.param('{"final_answer": 391}', ['"final_answer" does not match', "string"], id="answer-wrong-type"),
    ],
)
def test_parse_errors_are_readable(fmt, text, words):
    with pytest.raises(StepParseError) as info:
        fmt.parse(text, step_index=1)
    message = str(info.value)
    for word in words:
        assert word in message, (word, message)
    assert "Traceback" not in message and len(message) < 300  # short enough for a model to act on


def test_step_parse_error_is_a_value_error():
    assert issubclass(StepParseError, ValueError)


# -- render ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "step",
    [
        ParsedStep(thought=None, calls=[ToolCall(id="call_3_0", name="calculator", arguments={"expression": "17 * 23"})]),
        ParsedStep(
            thought=None,
            calls=[
                ToolCall(id="call_3_0", name="convert", arguments={"amount": 1.5, "unit": "mi"}),
                ToolCall(id="call_3_1", name="calculator", arguments={"expression": "√2 ≈ 1.41"}),
            ],
        ),
        ParsedStep(thought=None, calls=[], final_answer="北京 🌧 12°C", is_final=True),
    ],
    ids=["one-call", "two-calls-unicode", "final"],
)
def test_render_round_trips_through_parse(fmt, step):
    text = fmt.render(step)
    assert fmt.parse(text, step_index=3) == step
    assert "\\u" not in text  # unicode is written as is, like the grammar makes the model write it


def test_render_round_trips_thought_when_enabled():
    fmt = StepFormat(ToolRegistry([calculator]), limits=StepLimits(thought_chars=80))
    step = ParsedStep(thought="Multiply.", calls=[ToolCall(id="call_1_0", name="calculator", arguments={"expression": "2*3"})])
    assert fmt.render(step).startswith('{"thought": "Multiply.", ')
    assert fmt.parse(fmt.render(step), step_index=1) == step


def test_render_drops_thought_when_disabled(fmt):
    text = fmt.render(ParsedStep(thought="secret", calls=[], final_answer="x", is_final=True))
    assert text == '{"final_answer": "x"}'


def test_render_structured_answer_round_trips():
    fmt = StepFormat(ToolRegistry([calculator]), output_type=Report)
    step = ParsedStep(thought=None, calls=[], final_answer=Report(summary="ok", points=["a", "b"], score=2.5), is_final=True)
    text = fmt.render(step)
    assert json.loads(text) == {"final_answer": {"summary": "ok", "points": ["a", "b"], "score": 2.5}}
    assert fmt.parse(text, step_index=1) == step


def test_output_type_without_a_schema_is_refused_clearly():
    from agentkit import ToolDefinitionError

    class Opaque:
        pass

    with pytest.raises(ToolDefinitionError, match="output_type=Opaque has no JSON Schema"):
        StepFormat(ToolRegistry([]), output_type=Opaque)
