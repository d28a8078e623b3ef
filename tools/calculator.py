"""A calculator the model can't abuse: arithmetic parsed with `ast`, never `eval`.

Only numbers, + - * / // % **, unary signs, parentheses and a few math functions are allowed.
Percentages read as people write them: "15% * 840" and "15% of 840" are 126 ("15 % 4" is modulo).
Exponents and results are capped so `9**9**9` or `10**10**10` cannot hang or exhaust memory.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable
from typing import Any

from agentkit.prompting import Example, ExampleCall
from agentkit.tool import tool

MAX_EXPRESSION_CHARS = 500
MAX_EXPONENT = 1000
MAX_RESULT_DIGITS = 100  # |result| < 10**100 for integers
MAX_DEPTH = 300  # a flat sum nests one level per term; 500 characters allow ~250 terms
_THOUSANDS = re.compile(r"(?<![\w.])\d{1,3}(?:,\d{3})+(?!\d)")
# A percentage: a number, "%", then no operand ("15% * 840", "15% of 840", "840 * 15%"); "15 % 4" stays modulo.
_PERCENT_OF = re.compile(r"(\d+(?:\.\d+)?)\s*%\s*of\b", re.IGNORECASE)
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*%(?!\s*[\w(.+\-])")

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[int | float], int | float]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sqrt": math.sqrt,
    "abs": abs,
    "round": round,
    "floor": math.floor,
    "ceil": math.ceil,
    "log": math.log,
    "log10": math.log10,
    "exp": math.exp,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "min": min,
    "max": max,
}
_CONSTANTS = {"pi": math.pi, "e": math.e}


class CalculatorError(ValueError):
    """The expression is not allowed or cannot be evaluated; the message says why."""


def evaluate(expression: str) -> int | float:
    """Evaluate an arithmetic expression safely.

    Example:
        >>> evaluate("17 * 23")
        391
        >>> evaluate("sqrt(2) ** 2 < 3")  # doctest: +NORMALIZE_WHITESPACE
        Traceback (most recent call last):
        ...
        agentkit.tools.calculator.CalculatorError: '<' is not allowed: use numbers, + - * / // % **,
        parentheses and sqrt, abs, round, floor, ceil, log, log10, exp, sin, cos, tan, min, max, pi, e.
    """
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise CalculatorError(f"The expression has {len(expression)} characters; the limit is {MAX_EXPRESSION_CHARS}.")
    # Accept the symbols people (and models) write for multiplication, division and powers.
    text = expression.replace("×", "*").replace("÷", "/").replace("^", "**")
    # Drop thousands separators ("1,234,567") but keep the commas between function arguments.
    text = _THOUSANDS.sub(lambda match: match.group().replace(",", ""), text)
    text = _PERCENT.sub(r"(\1 / 100)", _PERCENT_OF.sub(r"(\1 / 100) *", text))
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        raise CalculatorError(f"{expression!r} is not a valid arithmetic expression.") from None
    return _eval(tree.body, 0)


def _eval(node: ast.AST, depth: int) -> int | float:
    if depth > MAX_DEPTH:
        raise CalculatorError("The expression is nested too deeply.")
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return _check_size(node.value)
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand, depth + 1))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left, depth + 1), _eval(node.right, depth + 1)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise CalculatorError(f"Exponent {right} is too large; the limit is {MAX_EXPONENT}.")
        try:
            result = _BINARY[type(node.op)](left, right)
        except ZeroDivisionError:
            raise CalculatorError("Division by zero.") from None
        except OverflowError:
            raise CalculatorError("The result is too large.") from None
        return _check_size(result)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
        and len(node.args) <= 2
    ):
        args = [_eval(arg, depth + 1) for arg in node.args]
        try:
            return _check_size(_FUNCTIONS[node.func.id](*args))
        except (ValueError, TypeError, OverflowError) as exc:
            raise CalculatorError(f"{node.func.id}() failed: {exc}.") from None
    raise CalculatorError(
        f"{_describe(node)} is not allowed: use numbers, + - * / // % **, parentheses and "
        f"{', '.join(_FUNCTIONS)}, {', '.join(_CONSTANTS)}."
    )


def _check_size(value: object) -> int | float:
    if isinstance(value, complex):
        raise CalculatorError("The result is a complex number, which is not supported.")
    if isinstance(value, int) and abs(value) >= 10**MAX_RESULT_DIGITS:
        raise CalculatorError(f"The result has more than {MAX_RESULT_DIGITS} digits.")
    if isinstance(value, float) and not math.isfinite(value):
        raise CalculatorError("The result is not a finite number.")
    if not isinstance(value, (int, float)):  # the operators and functions allowed make none of these
        raise CalculatorError(f"The result {value!r} is not a number.")
    return value


def _describe(node: ast.AST) -> str:
    symbols = {ast.Lt: "<", ast.Gt: ">", ast.Eq: "==", ast.LtE: "<=", ast.GtE: ">=", ast.NotEq: "!="}
    if isinstance(node, ast.Compare):
        return repr(symbols.get(type(node.ops[0]), "comparison"))
    if isinstance(node, ast.Name):
        return f"The name {node.id!r}"
    if isinstance(node, ast.Call):
        return "That function call"
    if isinstance(node, ast.Attribute):
        return f"Attribute access ('.{node.attr}')"
    return f"{type(node).__name__}"


def _format(value: int | float) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.10g}"
    return str(value)


@tool(examples=[{"expression": "(4 + 6) * 12"}])
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression and return the number.

    Args:
        expression: arithmetic with numbers, + - * / ** and parentheses.
    """
    return _format(evaluate(expression))


# Few-shot turns for agents that use the calculator: small models copy their shape (one call, then
# the answer taken from the result). Used by the math assistant and by `agentkit run --tools calculator`.
CALCULATOR_EXAMPLES = [
    Example(
        task="What is 12 * 31?",
        calls=[ExampleCall(name="calculator", arguments={"expression": "12 * 31"}, result="372")],
        answer="372",
    ),
    Example(
        task="Add 150 and 47.",
        calls=[ExampleCall(name="calculator", arguments={"expression": "150 + 47"}, result="197")],
        answer="197",
    ),
]
