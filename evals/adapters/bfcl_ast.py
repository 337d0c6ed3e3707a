"""BFCL's AST checker for Python function calls: decoding a model's answer into calls, and
matching them against the possible answers (function name, required parameters, types, and
values from the allowed list).

A port of `bfcl_eval.eval_checker.ast_eval.ast_checker` and the prompting decoder of
`bfcl_eval.model_handler.utils` (Apache-2.0, bfcl-eval 2026.3.23), Python language only. The
package itself is not a dependency: importing its checker pulls in every provider SDK it wraps
(openai, anthropic, cohere, mistralai, google-genai, boto3, qwen-agent, faiss ...) and pins
numpy 1.x. Two deliberate differences, both lenient in the way BFCL is for its FC models:
names may use `_` for `.` (OpenAI-style tool names cannot contain dots), and JSON-formatted calls
(`[{"name": ..., "arguments": {...}}]`) are decoded as well as Python syntax.
"""

from __future__ import annotations

import ast
import json
import operator
import re
from typing import Any

Call = dict[str, dict[str, Any]]  # {function_name: {param: value}}, as BFCL represents a call

PYTHON_TYPES: dict[str, type] = {
    "string": str, "integer": int, "float": float, "boolean": bool,
    "array": list, "tuple": list, "dict": dict, "any": str,
}
NESTED_TYPES = ("array", "tuple")
_STANDARDIZE = re.compile(r"[ ,./\-_*^]")
_FENCE = re.compile(r"^```(?:\w+)?\s*|\s*```$")
_TOOLCALL = re.compile(r"<TOOLCALL>(.*?)</TOOLCALL>", re.S)
_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.Pow: operator.pow, ast.Mod: operator.mod,
           ast.FloorDiv: operator.floordiv}


class DecodeError(ValueError):
    """The answer is not a list of function calls."""


# ---------------------------------------------------------------- decoding


def decode(answer: str) -> list[Call]:
    """The calls in a model's answer, or DecodeError. Python call syntax is BFCL's prompting
    format; a JSON list of {name, arguments} objects is accepted too."""
    text = answer.strip()
    tagged = _TOOLCALL.search(text)
    if tagged:
        text = tagged.group(1).strip()
    text = _FENCE.sub("", text).strip()
    if text[:1] in "[{":
        decoded = _decode_json(text)
        if decoded is not None:
            return decoded
    text = text.strip("`\n ").strip("'")
    if not text.startswith("["):
        text = "[" + text
    if not text.endswith("]"):
        text = text + "]"
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise DecodeError(f"not Python call syntax: {exc.msg}") from None
    body = tree.body
    elements = body.elts if isinstance(body, (ast.List, ast.Tuple)) else [body]
    calls: list[Call] = []
    for element in elements:
        if not isinstance(element, ast.Call):
            raise DecodeError(f"{ast.unparse(element)[:60]!r} is not a function call")
        calls.append(_resolve_call(element))
    return calls


def is_empty(calls: list[Call]) -> bool:
    return not calls or all(not name for call in calls for name in call)


def _decode_json(text: str) -> list[Call] | None:
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None
    items = data if isinstance(data, list) else [data]
    calls: list[Call] = []
    for entry in items:
        if not isinstance(entry, dict):
            return None
        entry = entry.get("function", entry) if isinstance(entry.get("function"), dict) else entry
        name = entry.get("name", entry.get("function"))
        args = entry.get("arguments", entry.get("parameters", {}))
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except json.JSONDecodeError:
                return None
        if not isinstance(name, str) or not isinstance(args, dict):
            if len(entry) == 1 and isinstance(next(iter(entry.values())), dict):
                calls.append(dict(entry))  # already BFCL's {name: {params}} shape
                continue
            return None
        calls.append({name: args})
    return calls


def _resolve_call(node: ast.Call) -> Call:
    parts: list[str] = []
    func: ast.expr = node.func
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
    return {".".join(reversed(parts)): {kw.arg: _resolve_value(kw.value)
                                        for kw in node.keywords if kw.arg is not None}}


def _resolve_value(node: ast.expr) -> Any:
    """A literal argument value. Unlike BFCL, arithmetic is folded without `eval`: the answer is
    model output, and nothing from it is executed."""
    if isinstance(node, ast.Constant):
        return "..." if node.value is Ellipsis else node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _resolve_value(node.operand)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return -value if isinstance(node.op, ast.USub) else value
        return ast.unparse(node)
    if isinstance(node, ast.List):
        return [_resolve_value(v) for v in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_resolve_value(v) for v in node.elts)
    if isinstance(node, ast.Dict):
        return {_resolve_value(k) if k is not None else None: _resolve_value(v)
                for k, v in zip(node.keys, node.values, strict=True)}
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        left, right = _resolve_value(node.left), _resolve_value(node.right)
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (left, right)):
            try:
                return _BINOPS[type(node.op)](left, right)
            except (ArithmeticError, OverflowError):
                pass
        return ast.unparse(node)
    if isinstance(node, ast.Name):
        return node.id  # a variable: BFCL compares it as a string
    if isinstance(node, ast.Call):
        return _resolve_call(node) if node.keywords else ast.unparse(node)
    if isinstance(node, ast.Lambda):
        return ast.unparse(node.body)
    return ast.unparse(node)


# ---------------------------------------------------------------- checking


def check(functions: list[dict[str, Any]], calls: list[Call], possible: list[Call],
          category: str) -> tuple[bool, str]:
    """BFCL's `ast_checker` for Python: (valid, reason)."""
    if "parallel" in category:
        return _parallel_no_order(functions, calls, possible)
    if len(calls) != len(possible) or (category != "multiple" and len(calls) != 1):
        return False, f"wrong number of functions: {len(calls)} (expected {len(possible)})"
    expected = next(iter(possible[0]))
    return _simple(_find(functions, expected), calls[0], possible[0])


def _find(functions: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    return next((f for f in functions if f.get("name") == name), None)


def _parallel_no_order(functions: list[dict[str, Any]], calls: list[Call],
                       possible: list[Call]) -> tuple[bool, str]:
    if len(calls) != len(possible):
        return False, f"wrong number of functions: {len(calls)} (expected {len(possible)})"
    matched: set[int] = set()
    for i, answer in enumerate(possible):
        description = _find(functions, next(iter(answer)))
        reasons = []
        for j, call in enumerate(calls):
            if j in matched:
                continue
            ok, reason = _simple(description, call, answer)
            if ok:
                matched.add(j)
                break
            reasons.append(reason)
        else:
            return False, f"no call matches expected call {i}: {'; '.join(reasons[:2])}"
    return True, ""


def _name_matches(expected: str, got: str) -> bool:
    return got == expected or got == expected.replace(".", "_")


def _simple(description: dict[str, Any] | None, call: Call,
            possible: Call) -> tuple[bool, str]:
    if description is None:
        return False, "expected function is not among the offered functions"
    expected_name, allowed = next(iter(possible.items()))
    got_name, params = next(iter(call.items())) if call else ("", {})
    if not _name_matches(expected_name, got_name):
        return False, f"function {got_name!r}, expected {expected_name!r}"
    details = description["parameters"]["properties"]
    for name in description["parameters"].get("required", []):
        if name not in params:
            return False, f"missing required parameter {name!r}"
    for name, value in params.items():
        if name not in details or name not in allowed:
            return False, f"unexpected parameter {name!r}"
        ok, reason = _param_ok(name, value, allowed[name], details[name])
        if not ok:
            return False, reason
    for name, values in allowed.items():
        if name not in params and "" not in values:
            return False, f"parameter {name!r} omitted but not optional"
    return True, ""


def _param_ok(name: str, value: Any, allowed: list[Any],
              detail: dict[str, Any]) -> tuple[bool, str]:
    type_name = detail["type"]
    expected = PYTHON_TYPES.get(type_name)
    if expected is None:
        return False, f"parameter {name!r} has unsupported type {type_name!r}"
    nested = PYTHON_TYPES.get(detail.get("items", {}).get("type", "")) \
        if type_name in NESTED_TYPES else None
    if type_name == "tuple" and isinstance(value, tuple):
        value = list(value)  # the possible answers went through JSON, which has no tuples
    if type_name == "float" and type(value) is int:
        value = float(value)  # Python would convert it at the call
    ok, is_variable, reason = _type_ok(name, value, allowed, expected, nested)
    if not ok:
        return False, reason
    if not is_variable:
        if expected is dict:
            return _dict_ok(name, value, allowed)
        if expected is list and nested is dict:
            return _list_of_dicts_ok(name, value, allowed)
        if expected is str:
            if _standardize(value) in [_standardize(a) for a in allowed if isinstance(a, str)]:
                return True, ""
            return False, f"{name}={value!r} is not one of {allowed}"
        if expected is list:
            # BFCL reads an optional marker ("") as an empty list here.
            options = [_standardize_list(a) if isinstance(a, list) else []
                       for a in allowed if isinstance(a, list) or a == ""]
            if _standardize_list(value) in options:
                return True, ""
            return False, f"{name}={value!r} is not one of {allowed}"
    if value in allowed:
        return True, ""
    return False, f"{name}={value!r} is not one of {allowed}"


def _type_ok(name: str, value: Any, allowed: list[Any], expected: type,
             nested: type | None) -> tuple[bool, bool, str]:
    """(valid, is_variable, reason). A value whose type differs from the declared one is still
    valid when it matches the possible answers' type: BFCL writes variables as strings."""
    answer_type = next((type(a) for a in allowed if a != ""), None)
    is_variable = answer_type is not None and answer_type is not expected
    if type(value) is expected:
        if nested is None:
            return True, is_variable, ""
        for option in allowed:
            # As in BFCL, an optional marker ("") among the options passes the item check.
            if not isinstance(option, list) or (isinstance(value, list) and all(
                    _type_ok(name, v, option, nested, None)[0] for v in value)):
                return True, is_variable, ""
        return False, False, f"{name}: items of {value!r} are not {nested.__name__}"
    if answer_type is not None and type(value) is answer_type:
        return True, True, ""
    return False, False, f"{name}: expected {expected.__name__}, got {type(value).__name__}"


def _dict_ok(name: str, value: dict[str, Any], options: list[Any]) -> tuple[bool, str]:
    reason = f"{name}: no allowed dict matches"
    for option in options:
        if option == "" or not isinstance(option, dict):
            continue
        bad = next((k for k, v in value.items() if k not in option
                    or _standardize(v) not in [_standardize(a) for a in option[k]]), None)
        if bad is not None:
            reason = f"{name}[{bad!r}] is unexpected or not an allowed value"
            continue
        absent = next((k for k, v in option.items() if k not in value and "" not in v), None)
        if absent is not None:
            reason = f"{name} is missing key {absent!r}"
            continue
        return True, ""
    return False, reason


def _list_of_dicts_ok(name: str, value: list[Any], options: list[Any]) -> tuple[bool, str]:
    for option in options:
        if isinstance(option, list) and len(option) == len(value) and all(
                isinstance(v, dict) and _dict_ok(name, v, [o])[0]
                for v, o in zip(value, option, strict=True)):
            return True, ""
    return False, f"{name}: no allowed list of dicts matches"


def _standardize(value: Any) -> Any:
    """BFCL's string normalisation: no spaces or ,./-_*^, lowercase, single quotes as double, so
    'April 1, 2024' and 'april 1 2024' are the same answer. Non-strings pass through."""
    if not isinstance(value, str):
        return value
    return _STANDARDIZE.sub("", value).lower().replace("'", '"')


def _standardize_list(value: list[Any]) -> list[Any]:
    return [_standardize(v) for v in value]
