"""`@tool`: the schema a function's signature and docstring give, and the functions it refuses."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable
from typing import Any, Literal

import pydantic
import pytest
from pydantic import BaseModel

from agentkit import Tool, ToolDefinitionError, tool


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Point(BaseModel):
    x: int
    y: int


class Box(BaseModel):
    corner: Point
    label: str


class NotAModel:
    """An arbitrary class: pydantic has no JSON Schema for it."""


# -- schema table ---------------------------------------------------------------------------------


def _str(value: str) -> str:
    """Echo."""
    return value


def _int(value: int) -> int:
    """Echo."""
    return value


def _float(value: float) -> float:
    """Echo."""
    return value


def _bool(value: bool) -> bool:
    """Echo."""
    return value


def _literal(value: Literal["km", "mi"]) -> str:
    """Echo."""
    return value


def _enum(value: Color) -> str:
    """Echo."""
    return value.value


def _optional(value: int | None = None) -> str:
    """Echo."""
    return repr(value)


def _pep604_optional(value: int | None = None) -> str:
    """Echo."""
    return repr(value)


def _default(value: int = 7) -> int:
    """Echo."""
    return value


def _list(value: list[str]) -> str:
    """Echo."""
    return ",".join(value)


def _dict(value: dict[str, int]) -> int:
    """Echo."""
    return sum(value.values())


def _model(value: Point) -> int:
    """Echo."""
    return value.x + value.y


def _nested_model(value: Box) -> str:
    """Echo."""
    return f"{value.label}@{value.corner.x},{value.corner.y}"


def _resolve(schema: dict[str, Any], prop: dict[str, Any]) -> dict[str, Any]:
    """Follow a local `$ref` (also inside anyOf) to the sub-schema it names."""
    if "$ref" in prop:
        return schema["$defs"][prop["$ref"].split("/")[-1]]
    for branch in prop.get("anyOf", []):
        if "$ref" in branch:
            return schema["$defs"][branch["$ref"].split("/")[-1]]
    return prop


SCHEMA_CASES = [
    # (function, expected property schema (subset), required?, arguments to call with, expected result)
    pytest.param(_str, {"type": "string"}, True, {"value": "héllo"}, "héllo", id="str"),
    pytest.param(_int, {"type": "integer"}, True, {"value": 3}, 3, id="int"),
    pytest.param(_float, {"type": "number"}, True, {"value": 2.5}, 2.5, id="float"),
    pytest.param(_bool, {"type": "boolean"}, True, {"value": True}, True, id="bool"),
    pytest.param(_literal, {"enum": ["km", "mi"], "type": "string"}, True, {"value": "mi"}, "mi", id="literal"),
    pytest.param(_enum, {"enum": ["red", "blue"], "type": "string"}, True, {"value": "blue"}, "blue", id="enum"),
    pytest.param(
        _optional, {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None}, False, {}, "None", id="optional"
    ),
    pytest.param(
        _pep604_optional,
        {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None},
        False,
        {"value": 4},
        "4",
        id="int-or-none",
    ),
    pytest.param(_default, {"type": "integer", "default": 7}, False, {}, 7, id="default"),
    pytest.param(_list, {"type": "array", "items": {"type": "string"}}, True, {"value": ["a", "b"]}, "a,b", id="list[str]"),
    pytest.param(
        _dict,
        {"type": "object", "additionalProperties": {"type": "integer"}},
        True,
        {"value": {"a": 1, "b": 2}},
        3,
        id="dict[str,int]",
    ),
    pytest.param(
        _model,
        {"type": "object", "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}}, "required": ["x", "y"]},
        True,
        {"value": {"x": 2, "y": 3}},
        5,
        id="pydantic-model",
    ),
    pytest.param(
        _nested_model,
        {"type": "object", "required": ["corner", "label"]},
        True,
        {"value": {"corner": {"x": 1, "y": 2}, "label": "A"}},
        "A@1,2",
        id="nested-pydantic-model",
    ),
]


@pytest.mark.parametrize(("fn", "expected", "required", "arguments", "result"), SCHEMA_CASES)
def test_schema_table(fn, expected, required, arguments, result):
    t = tool(fn)
    schema = t.parameters
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False  # unknown arguments are refused
    prop = _resolve(schema, schema["properties"]["value"])
    for key, value in expected.items():
        assert prop[key] == value, (key, prop)
    assert ("value" in schema.get("required", [])) is required
    assert "title" not in schema and "title" not in schema["properties"]["value"]  # no pydantic noise
    # The schema and the function agree: validated arguments call the function.
    assert t(**t.validate_arguments(arguments)) == result


def test_nested_model_schema_uses_defs_and_refs():
    t = tool(_nested_model)
    schema = t.parameters
    assert schema["properties"]["value"] == {"$ref": "#/$defs/Box"}
    assert schema["$defs"]["Box"]["properties"]["corner"] == {"$ref": "#/$defs/Point"}
    assert schema["$defs"]["Point"]["properties"] == {"x": {"type": "integer"}, "y": {"type": "integer"}}
    # Nested arguments reach the function as model instances, not dicts.
    kwargs = t.validate_arguments({"value": {"corner": {"x": 1, "y": 2}, "label": "A"}})
    assert isinstance(kwargs["value"], Box) and isinstance(kwargs["value"].corner, Point)


def test_several_parameters_keep_order_and_required_list():
    @tool
    def book(city: str, nights: int, breakfast: bool = False, note: str | None = None) -> str:
        """Book a room."""
        return city

    assert list(book.parameters["properties"]) == ["city", "nights", "breakfast", "note"]
    assert book.parameters["required"] == ["city", "nights"]


def test_dict_default_values_survive_in_the_schema():
    @tool
    def render(meta: dict[str, str] = {"title": "Untitled", "lang": "en"}, title: str = "title") -> str:  # noqa: B006
        """Render."""
        return meta["title"]

    props = render.parameters["properties"]
    assert props["meta"]["default"] == {"title": "Untitled", "lang": "en"}
    assert props["title"] == {"default": "title", "type": "string"}


def test_async_function_becomes_async_tool_and_runs():
    @tool
    async def fetch(url: str, retries: int = 1) -> str:
        """Fetch a URL."""
        await asyncio.sleep(0)
        return f"{url}#{retries}"

    assert isinstance(fetch, Tool)
    assert fetch.is_async is True
    assert fetch.parameters["properties"]["url"] == {"type": "string"}
    assert asyncio.run(fetch(url="https://example.org")) == "https://example.org#1"
    assert asyncio.run(fetch(**fetch.validate_arguments({"url": "u", "retries": "3"}))) == "u#3"


def test_sync_tool_is_not_async():
    assert tool(_int).is_async is False


# -- docstrings -----------------------------------------------------------------------------------


def google(city: str, days: int = 1, unit: Literal["C", "F"] = "C") -> str:
    """Forecast the weather for a city.

    Uses a public forecast service; results
    are cached for an hour.

    Args:
        city: the city name, e.g. "Paris".
        days (int): how many days ahead,
            from 1 to 7.
        unit: temperature unit.

    Returns:
        The forecast as text.

    Raises:
        ValueError: never, really.
    """
    return city


def rest(city: str, days: int = 1, unit: Literal["C", "F"] = "C") -> str:
    """Forecast the weather for a city.

    Uses a public forecast service; results
    are cached for an hour.

    :param city: the city name, e.g. "Paris".
    :param int days: how many days ahead,
        from 1 to 7.
    :param unit: temperature unit.
    :returns: the forecast as text.
    :raises ValueError: never, really.
    """
    return city


@pytest.mark.parametrize("fn", [google, rest], ids=["google", "rest"])
def test_docstring_gives_description_and_argument_descriptions(fn):
    t = tool(fn)
    assert t.description == "Forecast the weather for a city.\n\nUses a public forecast service; results are cached for an hour."
    props = t.parameters["properties"]
    assert props["city"]["description"] == 'the city name, e.g. "Paris".'
    assert props["days"]["description"] == "how many days ahead, from 1 to 7."
    assert props["unit"]["description"] == "temperature unit."
    # Sections after the arguments do not leak into the description or the arguments.
    assert "Returns" not in t.description and "never" not in t.description
    assert "forecast as text" not in props["unit"]["description"]


def test_undocumented_function_has_empty_description_and_no_argument_descriptions():
    def bare(x: int) -> int:
        return x

    t = tool(bare)
    assert t.description == ""
    assert "description" not in t.parameters["properties"]["x"]


# -- options --------------------------------------------------------------------------------------


def test_tool_options_override_name_description_and_set_timeout_examples_and_output_limit():
    @tool(
        name="get-weather",
        description="Weather now.",
        timeout=2.5,
        max_output_chars=100,
        examples=[{"city": "Paris"}],
    )
    def weather(city: str) -> str:
        """Docstring description that the option replaces."""
        return f"sunny in {city}"

    assert weather.name == "get-weather"
    assert weather.description == "Weather now."
    assert weather.timeout == 2.5
    assert weather.max_output_chars == 100
    assert weather.examples == [{"city": "Paris"}]
    assert weather(city="Oslo") == "sunny in Oslo"
    assert repr(weather) == "Tool(name='get-weather')"


def test_bare_decorator_uses_function_name_and_defaults():
    t = tool(_str)
    assert t.name == "_str"
    assert t.timeout is None and t.max_output_chars is None and t.examples == []
    assert t.__wrapped__ is _str


def test_decorating_a_tool_again_returns_it_unchanged():
    t = tool(_str)
    assert tool(t) is t


# -- calling and validating -----------------------------------------------------------------------


def test_calling_the_tool_calls_the_function():
    calls = []

    @tool
    def record(text: str, times: int = 1) -> str:
        """Record text."""
        calls.append((text, times))
        return text * times

    assert record("ab", times=2) == "abab"
    assert record(text="c") == "c"
    assert calls == [("ab", 2), ("c", 1)]


def test_validate_arguments_coerces_and_fills_defaults():
    @tool
    def convert(amount: float, unit: Literal["km", "mi"], precise: bool = False, tags: list[str] = []) -> str:  # noqa: B006
        """Convert."""
        return unit

    kwargs = convert.validate_arguments({"amount": "12.5", "unit": "km", "precise": "true"})
    assert kwargs == {"amount": 12.5, "unit": "km", "precise": True, "tags": []}
    assert isinstance(kwargs["amount"], float)


@pytest.mark.parametrize(
    "arguments",
    [
        pytest.param({"unit": "km"}, id="missing-required"),
        pytest.param({"amount": "lots", "unit": "km"}, id="wrong-type"),
        pytest.param({"amount": 1, "unit": "parsec"}, id="not-in-literal"),
        pytest.param({"amount": 1, "unit": "km", "extra": 1}, id="unknown-argument"),
    ],
)
def test_validate_arguments_rejects(arguments):
    @tool
    def convert(amount: float, unit: Literal["km", "mi"]) -> str:
        """Convert."""
        return unit

    with pytest.raises(pydantic.ValidationError):
        convert.validate_arguments(arguments)


# -- rejection table ------------------------------------------------------------------------------


def _missing_annotation(x, y: int) -> int:  # type: ignore[no-untyped-def]
    return y


def _star_args(*values: int) -> int:
    return 0


def _star_kwargs(**options: str) -> int:
    return 0


def _positional_only(x: int, /) -> int:
    return x


def _any(x: Any) -> int:
    return 0


def _arbitrary_class(x: NotAModel) -> int:
    return 0


def _callable(x: Callable[[int], int]) -> int:
    return 0


def _optional_arbitrary_class(x: NotAModel | None = None) -> int:
    return 0


def _ok(x: int) -> int:
    return x


def final_answer(x: str) -> str:
    return x


REJECTIONS = [
    # (function, decorator options, words the message must contain)
    pytest.param(_missing_annotation, {}, ["'x'", "no type annotation", "x: str"], id="missing-annotation"),
    pytest.param(_star_args, {}, ["'values'", "*values", "values: list[str]"], id="*args"),
    pytest.param(_star_kwargs, {}, ["'options'", "**options", "options: dict["], id="**kwargs"),
    pytest.param(_positional_only, {}, ["'x'", "positional-only", "Remove the '/'"], id="positional-only"),
    pytest.param(_any, {}, ["'x'", "Any", "Use str, int"], id="Any"),
    pytest.param(_arbitrary_class, {}, ["'x'", "NotAModel", "pydantic model"], id="arbitrary-class"),
    pytest.param(_optional_arbitrary_class, {}, ["'x'", "NotAModel", "pydantic model"], id="optional-arbitrary-class"),
    pytest.param(_callable, {}, ["'x'", "Callable", "Use str, int"], id="callable"),
    pytest.param(_ok, {"name": "has space"}, ["'has space'", "Pass name="], id="invalid-name"),
    pytest.param(_ok, {"name": "1starts-with-digit"}, ["'1starts-with-digit'", "Pass name="], id="name-starts-with-digit"),
    pytest.param(_ok, {"name": "x" * 65}, ["1-64", "Pass name="], id="name-too-long"),
    pytest.param(_ok, {"name": "final_answer"}, ["'final_answer'", "Pass name="], id="reserved-name-option"),
    pytest.param(final_answer, {}, ["'final_answer'", "Pass name="], id="reserved-function-name"),
]


@pytest.mark.parametrize(("fn", "options", "words"), REJECTIONS)
def test_rejections_raise_tool_definition_error_with_a_fix(fn, options, words):
    with pytest.raises(ToolDefinitionError) as info:
        tool(**options)(fn) if options else tool(fn)
    message = str(info.value)
    for word in words:
        assert word in message, (word, message)
    assert isinstance(info.value, TypeError)  # catchable as the TypeError it is


def test_unresolvable_annotation_is_a_definition_error():
    namespace: dict[str, Any] = {}
    exec("def broken(x: 'DoesNotExist') -> int:\n    return 0", namespace)
    with pytest.raises(ToolDefinitionError, match="DoesNotExist"):
        tool(namespace["broken"])


def test_non_callable_is_rejected():
    with pytest.raises(ToolDefinitionError, match="needs a function"):
        tool(42)  # type: ignore[call-overload]


def test_valid_names_with_dash_and_underscore_are_accepted():
    assert tool(name="_private-tool_2")(_ok).name == "_private-tool_2"
    assert tool(name="x" * 64)(_ok).name == "x" * 64
