"""Dify's `maths/eval_expression`: arithmetic, evaluated by walking Python's syntax tree of the
expression. Nothing is ever `eval`ed: only numbers, the arithmetic operators, parentheses and
a fixed set of functions and constants are understood, and every result is bounded (so
`9**9**9` or `factorial(10**6)` are refused, not computed)."""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

from .base import BuiltinTool, ToolContext, ToolError, ToolParameter, ToolProvider, ToolResult

PROVIDER = ToolProvider(
    id="maths",
    label="Maths",
    description="Arithmetic a model should not do in its head.",
    icon="🧮",
)

MAX_CHARS = 1000
MAX_NODES = 300
# Integers up to about a thousand digits; floats are bounded by being finite.
MAX_INT_BITS = 3400
MAX_FACTORIAL = 450

Number = int | float
# Written signs people and models use for times, divided by and minus.
_SIGNS = str.maketrans({"\u00d7": "*", "\u00f7": "/", "\u2212": "-"})

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau}


def _factorial(value: Number) -> int:
    if isinstance(value, float):
        if not value.is_integer():
            raise ToolError("factorial() takes a whole number.")
        value = int(value)
    if value < 0:
        raise ToolError("factorial() takes a number that is not negative.")
    if value > MAX_FACTORIAL:
        raise ToolError(f"factorial() of more than {MAX_FACTORIAL} is too large.")
    return math.factorial(value)


def _log(value: Number, base: Number | None = None) -> float:
    return math.log(value) if base is None else math.log(value, base)


def _round(value: Number, digits: Number | None = None) -> Number:
    if digits is None:
        return round(value)
    if isinstance(digits, float) or abs(digits) > 100:
        raise ToolError("round() takes a whole number of digits, at most 100.")
    return round(value, digits)


FUNCTIONS: dict[str, Callable[..., Number]] = {
    "abs": abs,
    "round": _round,
    "floor": math.floor,
    "ceil": math.ceil,
    "sqrt": math.sqrt,
    "exp": math.exp,
    "log": _log,
    "ln": math.log,
    "log10": math.log10,
    "log2": math.log2,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "asin": math.asin,
    "acos": math.acos,
    "atan": math.atan,
    "atan2": math.atan2,
    "sinh": math.sinh,
    "cosh": math.cosh,
    "tanh": math.tanh,
    "degrees": math.degrees,
    "radians": math.radians,
    "hypot": math.hypot,
    "factorial": _factorial,
    "min": min,
    "max": max,
}


def _checked(value: Any) -> Number:
    """A result within bounds: finite floats, integers of at most ~1000 digits."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ToolError("The expression does not give a number.")
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise ToolError("The result is too large (more than about 1000 digits).")
    if isinstance(value, float) and not math.isfinite(value):
        raise ToolError("The result is too large to represent.")
    return value


def _power(base: Number, exponent: Number) -> Number:
    """`base ** exponent`, refused before computing when the result would be huge."""
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        if exponent * math.log2(abs(base)) > MAX_INT_BITS:
            raise ToolError("The result is too large (more than about 1000 digits).")
    if base == 0 and exponent < 0:
        raise ToolError("Division by zero (zero to a negative power).")
    try:
        result = base**exponent
    except OverflowError:
        raise ToolError("The result is too large to represent.") from None
    if isinstance(result, complex):
        raise ToolError("A negative number to a fractional power is not a real number.")
    return result


class _Evaluator:
    def __init__(self) -> None:
        self.nodes = 0

    def eval(self, node: ast.AST) -> Number:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise ToolError(f"The expression is too long (more than {MAX_NODES} parts).")
        if isinstance(node, ast.Expression):
            return self.eval(node.body)
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, int | float):
                raise ToolError(f"“{node.value!r}” is not a number.")
            return _checked(node.value)
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            return _checked(_UNARY[type(node.op)](self.eval(node.operand)))
        if isinstance(node, ast.BinOp):
            return self._binary(node)
        if isinstance(node, ast.Name):
            if node.id in CONSTANTS:
                return CONSTANTS[node.id]
            raise ToolError(f"Unknown name “{node.id}”. {ALLOWED}")
        if isinstance(node, ast.Call):
            return self._call(node)
        raise ToolError(f"“{_source(node)}” is not arithmetic. {ALLOWED}")

    def _binary(self, node: ast.BinOp) -> Number:
        if isinstance(node.op, ast.BitXor):
            raise ToolError("“^” is not a power here: write 2**10 for two to the tenth.")
        left, right = self.eval(node.left), self.eval(node.right)
        if isinstance(node.op, ast.Pow):
            return _checked(_power(left, right))
        function = _BINARY.get(type(node.op))
        if function is None:
            raise ToolError(f"The operator in “{_source(node)}” is not arithmetic. {ALLOWED}")
        try:
            return _checked(function(left, right))
        except ZeroDivisionError:
            raise ToolError("Division by zero.") from None
        except OverflowError:
            raise ToolError("The result is too large to represent.") from None

    def _call(self, node: ast.Call) -> Number:
        name = node.func.id if isinstance(node.func, ast.Name) else None
        if name is None or name not in FUNCTIONS:
            raise ToolError(f"Unknown function “{_source(node.func)}”. {ALLOWED}")
        if node.keywords or any(isinstance(arg, ast.Starred) for arg in node.args):
            raise ToolError(f"{name}() takes plain arguments only.")
        arguments = [self.eval(arg) for arg in node.args]
        try:
            return _checked(FUNCTIONS[name](*arguments))
        except TypeError:
            raise ToolError(f"{name}() does not take {len(arguments)} argument(s).") from None
        except ZeroDivisionError:
            raise ToolError("Division by zero.") from None
        except OverflowError:
            raise ToolError(f"The result of {name}() is too large to represent.") from None
        except ValueError:
            raise ToolError(f"{name}() is not defined for {_source(node)}.") from None


ALLOWED = (
    "Use numbers, + - * / // % **, parentheses, the constants pi, e and tau, and the "
    f"functions {', '.join(sorted(FUNCTIONS))}."
)


def _source(node: ast.AST) -> str:
    return ast.unparse(node)[:80]


def evaluate(expression: str) -> Number:
    """The value of an arithmetic expression; ToolError for anything else or out of bounds."""
    text = expression.strip().translate(_SIGNS)
    if not text:
        raise ToolError("The expression is empty.")
    if len(text) > MAX_CHARS:
        raise ToolError(f"The expression is longer than {MAX_CHARS} characters.")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise ToolError(f"“{text[:80]}” is not an arithmetic expression. {ALLOWED}") from None
    return _Evaluator().eval(tree)


def show(value: Number) -> str:
    """A result as text: integers whole, floats to 15 significant digits."""
    if isinstance(value, int):
        return str(value)
    return format(value, ".15g")


class EvalExpression(BuiltinTool):
    """Evaluates an arithmetic expression."""

    provider = PROVIDER
    name = "eval_expression"
    label = "Evaluate Expression"
    description = (
        "Evaluate an arithmetic expression exactly, e.g. (3.5 + 4) * 2**10 / sqrt(2). " + ALLOWED
    )
    parameters = (
        ToolParameter("expression", description="the expression to evaluate", required=True),
    )

    async def run(self, context: ToolContext, values: dict[str, Any]) -> ToolResult:
        value = evaluate(values["expression"])
        return ToolResult(text=show(value), json={"result": value})


TOOLS = (EvalExpression,)
