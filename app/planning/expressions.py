"""Conditions in rules: a small, safe expression language.

Staff write conditions such as::

    profile.language == "zh-CN" and "outdoor_advertising" in profile.permits
    data.level in ["orange", "red"]
    not profile.tags or "no-sms" not in profile.tags

What is allowed: the names given by the caller (``event``, ``data``, ``profile``), field access
with ``.`` or ``["key"]`` / ``[0]`` (looked up in the data, never Python attributes), text, numbers,
``true``/``false``/``null`` (Python spellings too), lists, ``== != < <= > >= in not in``,
``and or not``, and the functions ``len``, ``lower``, ``upper``. Nothing else parses: no calls of
other functions, no arithmetic, no lambdas, no attribute of an attribute's internals. The text is
parsed with ``ast`` and walked here; it is never handed to ``eval``.

A missing field is ``null``; ordering comparisons involving ``null`` are false, ``x in null`` is
false.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

MAX_LENGTH = 1000
MAX_NODES = 200

_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: _contains(b, a),
    ast.NotIn: lambda a, b: not _contains(b, a),
}
_FUNCTIONS: dict[str, Callable[[Any], Any]] = {
    "len": lambda v: len(v) if isinstance(v, str | list | dict) else 0,
    "lower": lambda v: v.lower() if isinstance(v, str) else v,
    "upper": lambda v: v.upper() if isinstance(v, str) else v,
}
_LITERAL_NAMES = {
    "true": True,
    "false": False,
    "null": None,
    "True": True,
    "False": False,
    "None": None,
}


class ExpressionError(ValueError):
    """A condition that does not parse or uses something not allowed."""


@dataclass(frozen=True)
class Expression:
    source: str
    tree: ast.expr

    def evaluate(self, context: Mapping[str, Any]) -> Any:
        return _eval(self.tree, context)

    def test(self, context: Mapping[str, Any]) -> bool:
        return bool(self.evaluate(context))


def compile_expression(source: str, names: frozenset[str] | set[str]) -> Expression:
    """Parse and check ``source``; ``names`` are the top-level names it may use."""
    if not isinstance(source, str) or not source.strip():
        raise ExpressionError("the condition is empty")
    if len(source) > MAX_LENGTH:
        raise ExpressionError(f"the condition is longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"syntax error at column {exc.offset}: {exc.msg}") from exc
    nodes = list(ast.walk(tree))
    if len(nodes) > MAX_NODES:
        raise ExpressionError(f"the condition is too complex (over {MAX_NODES} parts)")
    for node in nodes:
        _check(node, names)
    return Expression(source.strip(), tree.body)


def _check(node: ast.AST, names: frozenset[str] | set[str]) -> None:
    allowed = (
        ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub,
        ast.Compare, ast.Constant, ast.List, ast.Tuple, ast.Name, ast.Load,
        ast.Attribute, ast.Subscript, ast.Call, *_COMPARE,
    )  # fmt: skip
    if not isinstance(node, allowed):
        raise ExpressionError(f"{_describe(node)} is not allowed in a condition")
    if isinstance(node, ast.Constant) and not isinstance(
        node.value, str | int | float | bool | None
    ):
        raise ExpressionError(f"the value {node.value!r} is not allowed")
    if isinstance(node, ast.Name) and node.id not in names and node.id not in _LITERAL_NAMES:
        if node.id in _FUNCTIONS:
            return
        known = ", ".join(sorted(names))
        raise ExpressionError(f"unknown name {node.id!r} (use one of: {known})")
    if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
        raise ExpressionError(f"field {node.attr!r} is not allowed (starts with _)")
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS:
            raise ExpressionError(f"only the functions {', '.join(_FUNCTIONS)} may be called")
        if len(node.args) != 1 or node.keywords:
            raise ExpressionError(f"{node.func.id}() takes exactly one value")
    if isinstance(node, ast.Subscript) and not isinstance(node.slice, ast.Constant):
        raise ExpressionError("an index in [...] must be a fixed text or number")


def _describe(node: ast.AST) -> str:
    names = {ast.BinOp: "arithmetic", ast.Lambda: "lambda", ast.IfExp: "if-else",
             ast.NamedExpr: "assignment", ast.Dict: "a {...} mapping", ast.Starred: "*"}  # fmt: skip
    return names.get(type(node), type(node).__name__)


def _eval(node: ast.expr, ctx: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id in ctx:
            return ctx[node.id]
        return _LITERAL_NAMES.get(node.id)
    if isinstance(node, ast.Attribute):
        return _field(_eval(node.value, ctx), node.attr)
    if isinstance(node, ast.Subscript):
        assert isinstance(node.slice, ast.Constant)
        return _field(_eval(node.value, ctx), node.slice.value)
    if isinstance(node, ast.List | ast.Tuple):
        return [_eval(e, ctx) for e in node.elts]
    if isinstance(node, ast.BoolOp):
        return _bool_op(node, ctx)
    if isinstance(node, ast.UnaryOp):
        value = _eval(node.operand, ctx)
        if isinstance(node.op, ast.Not):
            return not value
        return -value if isinstance(value, int | float) and not isinstance(value, bool) else None
    if isinstance(node, ast.Compare):
        return _compare(node, ctx)
    if isinstance(node, ast.Call):
        assert isinstance(node.func, ast.Name)
        return _FUNCTIONS[node.func.id](_eval(node.args[0], ctx))
    raise ExpressionError(f"{_describe(node)} is not allowed in a condition")


def _bool_op(node: ast.BoolOp, ctx: Mapping[str, Any]) -> Any:
    is_and = isinstance(node.op, ast.And)
    value: Any = None
    for operand in node.values:
        value = _eval(operand, ctx)
        if bool(value) != is_and:
            return value
    return value


def _compare(node: ast.Compare, ctx: Mapping[str, Any]) -> bool:
    left = _eval(node.left, ctx)
    for op, right_node in zip(node.ops, node.comparators, strict=True):
        right = _eval(right_node, ctx)
        try:
            ok = _COMPARE[type(op)](left, right)
        except TypeError:  # e.g. null < 3, "a" < 1
            ok = False
        if not ok:
            return False
        left = right
    return True


def _field(value: Any, key: Any) -> Any:
    if isinstance(value, Mapping):
        return value.get(key)
    if isinstance(value, list) and isinstance(key, int) and not isinstance(key, bool):
        return value[key] if -len(value) <= key < len(value) else None
    return None


def _contains(container: Any, item: Any) -> bool:
    if isinstance(container, str):
        return isinstance(item, str) and item in container
    if isinstance(container, list | tuple | dict):
        return item in container
    return False
