"""The arithmetic behind tau2's `calculate` tool, which both domains offer.

tau2 filters the expression to digits, `+-*/().` and spaces and then `eval`s it. The filter keeps
names out but not `**`, so `9**9**9` would hang the tool; this walks the parsed expression instead
and bounds exponents, with the same answers and the same error for a bad character.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable

_ALLOWED = set("0123456789+-*/(). ")
_BINARY: dict[type, Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Pow: operator.pow,
}
_UNARY: dict[type, Callable[[float], float]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_MAX_EXPONENT = 100


def _evaluate(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > _MAX_EXPONENT:
            raise ValueError(f"Exponent too large (at most {_MAX_EXPONENT})")
        return _BINARY[type(node.op)](left, right)
    raise ValueError("Invalid expression")


def calculate(expression: str) -> str:
    """The value of `expression` rounded to 2 decimals, as tau2 prints it ('4.0' for '2 + 2')."""
    if not all(char in _ALLOWED for char in expression):
        raise ValueError("Invalid characters in expression")
    return str(round(float(_evaluate(ast.parse(expression, mode="eval"))), 2))
