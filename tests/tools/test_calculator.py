"""The built-in calculator: right answers, and every abuse refused fast with a CalculatorError."""

from __future__ import annotations

import math
import time

import pytest

from agentkit import Tool
from agentkit.tools import calculator
from agentkit.tools.calculator import MAX_EXPRESSION_CHARS, CalculatorError, evaluate


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        pytest.param("17*23", 391, id="multiply"),
        pytest.param("17 * 23", 391, id="spaces"),
        pytest.param("2 + 3 * 4", 14, id="precedence"),
        pytest.param("(2 + 3) * 4", 20, id="parentheses"),
        pytest.param("10 - 4 - 3", 3, id="left-associative"),
        pytest.param("2 ** 3 ** 2", 512, id="power-right-associative"),
        pytest.param("2^10", 1024, id="caret-is-power"),
        pytest.param("7 / 2", 3.5, id="true-division"),
        pytest.param("7 // 2", 3, id="floor-division"),
        pytest.param("7 % 3", 1, id="modulo"),
        pytest.param("-3 + 5", 2, id="unary-minus"),
        pytest.param("-(2 + 3)", -5, id="unary-minus-parentheses"),
        pytest.param("-2 ** 2", -4, id="unary-minus-binds-looser-than-power"),
        pytest.param("+4", 4, id="unary-plus"),
        pytest.param("1.5 * 4", 6.0, id="float"),
        pytest.param("sqrt(16)", 4.0, id="sqrt"),
        pytest.param("sqrt(2) ** 2", pytest.approx(2.0), id="sqrt-float"),
        pytest.param("pi", math.pi, id="pi"),
        pytest.param("2 * pi * 3", pytest.approx(6 * math.pi), id="pi-in-expression"),
        pytest.param("e", math.e, id="e"),
        pytest.param("abs(-5)", 5, id="abs"),
        pytest.param("floor(2.7) + ceil(2.1)", 5, id="floor-ceil"),
        pytest.param("log10(1000)", 3.0, id="log10"),
        pytest.param("3 × 4 ÷ 2", 6.0, id="unicode-operators"),
        pytest.param("1,000 + 1", 1001, id="thousands-separator"),
        pytest.param("1,234,567 * 2", 2469134, id="thousands-separators"),
        pytest.param("max(3, 9)", 9, id="max-two-arguments"),
        pytest.param("min(3,9)", 3, id="min-no-space"),
        pytest.param("round(2.567, 2)", 2.57, id="round-digits"),
        pytest.param("log(8, 2)", pytest.approx(3.0), id="log-base"),
        # Argument commas are not thousands separators: these once gave round(2.51) and log(10010).
        pytest.param("round(2.5,1)", 2.5, id="round-no-space"),
        pytest.param("log(100,10)", pytest.approx(2.0), id="log-no-space"),
        pytest.param("round(2.567,100)", 2.567, id="round-three-digit-argument"),
        pytest.param("1,000.5 + 1", 1001.5, id="thousands-with-decimals"),
        pytest.param("  2 + 2  ", 4, id="surrounding-whitespace"),
    ],
)
def test_results(expression, expected):
    assert evaluate(expression) == expected


def test_integer_results_stay_exact():
    assert evaluate("123456789 * 987654321") == 121932631112635269
    assert isinstance(evaluate("17 * 23"), int)


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        pytest.param("__import__('os')", ["function call", "not allowed"], id="dunder-import"),
        pytest.param("__import__('os').system('echo hi')", ["not allowed"], id="dunder-import-system"),
        pytest.param("os", ["'os'", "not allowed"], id="unknown-name"),
        pytest.param("open('/etc/passwd')", ["not allowed"], id="open"),
        pytest.param("(1).real", [".real", "not allowed"], id="attribute"),
        pytest.param("().__class__.__bases__", ["Attribute", "not allowed"], id="dunder-attribute"),
        pytest.param("pi.__class__", ["Attribute"], id="attribute-on-constant"),
        pytest.param("9**9**9", ["Exponent", "too large"], id="power-tower"),
        pytest.param("10**10**10", ["Exponent", "too large"], id="power-tower-10"),
        pytest.param("2 ** -5000", ["Exponent"], id="negative-exponent"),
        pytest.param("2 ** 1000", ["digits"], id="huge-result"),
        pytest.param("2 ** 1000 // 2 ** 999", ["digits"], id="huge-intermediate"),
        pytest.param("1" + "0" * 150, ["digits"], id="huge-literal"),
        pytest.param("1e999", ["finite"], id="infinite-literal"),
        pytest.param("1e308 * 10", ["finite"], id="float-overflow"),
        pytest.param("10.0 ** 1000", ["too large"], id="float-power-overflow"),
        pytest.param("1 / 0", ["Division by zero"], id="division-by-zero"),
        pytest.param("1 // 0", ["Division by zero"], id="floor-division-by-zero"),
        pytest.param("5 % 0", ["Division by zero"], id="modulo-by-zero"),
        pytest.param("1 < 2", ["'<'", "not allowed"], id="less-than"),
        pytest.param("1 == 1", ["'=='", "not allowed"], id="equals"),
        pytest.param("lambda: 1", ["Lambda", "not allowed"], id="lambda"),
        pytest.param("[x for x in range(3)]", ["not allowed"], id="list-comprehension"),
        pytest.param("[1, 2]", ["not allowed"], id="list"),
        pytest.param("'a' * 3", ["not allowed"], id="string"),
        pytest.param("True + 1", ["not allowed"], id="bool"),
        pytest.param("1j * 2", ["not allowed"], id="complex-literal"),
        pytest.param("(-8) ** 0.5", ["complex"], id="complex-result"),
        pytest.param("sqrt(-1)", ["sqrt", "domain"], id="sqrt-negative"),
        pytest.param("exp(1000)", ["exp"], id="exp-overflow"),
        pytest.param("sqrt(x=4)", ["not allowed"], id="keyword-argument"),
        pytest.param("x = 1", ["not a valid"], id="assignment"),
        pytest.param("1 +", ["not a valid"], id="syntax-error"),
        pytest.param("", ["not a valid"], id="empty"),
        pytest.param("1 +" * 200 + " 1", ["characters", str(MAX_EXPRESSION_CHARS)], id="too-long"),
        pytest.param("-" * 400 + "1", ["nested too deeply"], id="too-deep"),
    ],
)
def test_refusals(expression, words):
    started = time.perf_counter()
    with pytest.raises(CalculatorError) as info:
        evaluate(expression)
    assert time.perf_counter() - started < 0.5, "a refusal must be fast"
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_calculator_error_is_a_value_error():
    assert issubclass(CalculatorError, ValueError)


def test_power_towers_return_fast():
    for expression in ["9**9**9", "10**10**10", "(10**99)**1000", "2**2**2**2**2**2"]:
        started = time.perf_counter()
        with pytest.raises(CalculatorError):
            evaluate(expression)
        assert time.perf_counter() - started < 0.5, expression


def test_expression_at_the_length_limit_is_accepted():
    expression = "1 + 1".rjust(MAX_EXPRESSION_CHARS)
    assert len(expression) == MAX_EXPRESSION_CHARS
    assert evaluate(expression) == 2
    with pytest.raises(CalculatorError, match="characters"):
        evaluate(" " + expression)


def test_a_long_flat_sum_is_accepted():
    assert evaluate("+".join(["1"] * 40)) == 40
    assert evaluate("+".join(["1"] * 200)) == 200  # a flat sum of 200 terms is not "too deep"


# -- through the tool ----------------------------------------------------------------------------


def test_the_tool_returns_a_string():
    assert isinstance(calculator, Tool)
    assert calculator.name == "calculator"
    assert calculator(expression="17 * 23") == "391"
    assert calculator(expression="2 ^ 10") == "1024"


@pytest.mark.parametrize(
    ("expression", "text"),
    [
        ("sqrt(16)", "4"),  # integral floats print without ".0"
        ("0.1 + 0.2", "0.3"),  # rounding noise hidden
        ("1 / 3", "0.3333333333"),
        ("7 / 2", "3.5"),
        ("-7", "-7"),
        ("pi", "3.141592654"),
        ("1e20 * 10", "1e+21"),
    ],
)
def test_the_tool_formats_numbers_as_text(expression, text):
    assert calculator(expression=expression) == text


def test_the_tool_raises_calculator_error_for_refusals():
    with pytest.raises(CalculatorError):
        calculator(expression="__import__('os')")


def test_the_tool_schema_and_description():
    assert calculator.parameters["required"] == ["expression"]
    assert calculator.parameters["properties"]["expression"]["type"] == "string"
    assert "arithmetic" in calculator.parameters["properties"]["expression"]["description"]
    assert calculator.description.startswith("Evaluate an arithmetic expression")
    assert calculator.examples == [{"expression": "(4 + 6) * 12"}]


@pytest.mark.parametrize(
    ("expression", "value"),
    [("15% * 840", 126), ("15% of 840", 126), ("840 * 15%", 126), ("2.5% OF 200", 5), ("15%", 0.15), ("15 % 4", 3), ("15 %(4)", 3)],
)
def test_percentages_read_as_written_and_modulo_still_works(expression, value):
    """Models write "15% * 840" for "15% of 840"; a percentage is a number followed by % and no operand."""
    assert evaluate(expression) == pytest.approx(value)
