"""BFCL grading: bfcl-eval's own AST checker, and a decoder for the model's answer.

**The checker** is `bfcl_eval.eval_checker.ast_eval.ast_checker.ast_checker` from the PyPI
package `bfcl-eval` (pinned in requirements/eval.txt, installed with `--no-deps` by
`make install` / `make eval-extras`: its declared dependencies are ~40 provider SDKs and numpy 1.x).
That module needs only the standard library, except for one import:
`from bfcl_eval.constants.model_config import MODEL_CONFIG_MAPPING`, the registry of every model
handler, which imports every provider SDK. The checker uses the registry for one thing,
`convert_func_name`: whether the model under test writes `_` for `.` in function names
(`underscore_to_dot`, set for OpenAI-style function-calling models). The seam: while the checker
is imported, a stand-in module takes that registry's place in `sys.modules`, with one entry, for
`MODEL_NAME`, whose `underscore_to_dot` is False, as for BFCL's prompting models (our prompt
lists the functions with their dotted names, and the answer is Python call syntax). The
stand-in is removed again afterwards; the checker keeps its reference to the one-entry mapping.

**The decoder** is ours. bfcl-eval's prompting decoder (`model_handler.utils.
default_decode_ast_prompting`) cannot be imported without tree-sitter and its other handler
dependencies, and it `eval`s arithmetic and lambdas found in the model's answer. `decode` reads
the same Python call syntax into the same `[{name: {param: value}}]` shape without executing
anything (arithmetic on numbers is folded), and also accepts JSON-formatted calls
(`[{"name": ..., "arguments": {...}}]`) and a `<TOOLCALL>` wrapper.
"""

from __future__ import annotations

import ast
import json
import operator
import re
import sys
import types
from collections.abc import Callable
from functools import cache
from typing import Any

from evals.errors import EvalError

Call = dict[str, dict[str, Any]]  # {function_name: {param: value}}, as BFCL represents a call

MODEL_NAME = "slmflow-prompting"  # no `_`: the checker looks it up with `_` read as `/`
INSTALL_HINT = (
    "BFCL is graded by the bfcl-eval package's AST checker, which is not installed: "
    "run `make eval-extras` (or `.venv/bin/pip install --no-deps -r "
    "requirements/eval.txt`)"
)
_REGISTRY = "bfcl_eval.constants.model_config"

_FENCE = re.compile(r"^```(?:\w+)?\s*|\s*```$")
_TOOLCALL = re.compile(r"<TOOLCALL>(.*?)</TOOLCALL>", re.DOTALL)
_BINOPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
    ast.Mod: operator.mod,
    ast.FloorDiv: operator.floordiv,
}


# ---------------------------------------------------------------- checking


@cache
def load_ast_checker() -> Callable[..., dict[str, Any]]:
    """bfcl-eval's `ast_checker`, imported behind the stand-in registry (see the module doc);
    EvalError when bfcl-eval is not installed."""
    stand_in = types.ModuleType(_REGISTRY)
    stand_in.MODEL_CONFIG_MAPPING = {  # type: ignore[attr-defined]
        MODEL_NAME: types.SimpleNamespace(underscore_to_dot=False)
    }
    previous = sys.modules.get(_REGISTRY)
    sys.modules[_REGISTRY] = stand_in
    try:
        from bfcl_eval.eval_checker.ast_eval import ast_checker as module
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] == "bfcl_eval":
            raise EvalError(INSTALL_HINT) from None
        raise
    finally:
        if previous is None:
            del sys.modules[_REGISTRY]
        else:
            sys.modules[_REGISTRY] = previous
    if MODEL_NAME not in module.MODEL_CONFIG_MAPPING:
        raise RuntimeError(
            "bfcl_eval's ast_checker was imported before, with the real model "
            "registry; import it through evals.adapters.bfcl_checker only"
        )
    return module.ast_checker


def check(functions: list[dict[str, Any]], calls: list[Call], possible: list[Call], category: str) -> tuple[bool, str]:
    """(valid, reason) from bfcl-eval's checker, for Python calls in a BFCL category."""
    checker = load_ast_checker()  # first: it raises EvalError when bfcl-eval is missing
    from bfcl_eval.constants.enums import Language

    try:
        result = checker(functions, calls, possible, Language.PYTHON, category, MODEL_NAME)
    except (AttributeError, KeyError, TypeError, IndexError) as exc:
        # The checker assumes well-formed values (a list of dicts where the function takes one,
        # a declared type it knows); an answer it cannot read is a wrong answer.
        return False, f"bfcl-eval's checker could not read the answer: {exc!r}"
    return bool(result["valid"]), "; ".join(map(str, result["error"]))


# ---------------------------------------------------------------- decoding


class DecodeError(ValueError):
    """The answer is not a list of function calls."""


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
    return {".".join(reversed(parts)): {kw.arg: _resolve_value(kw.value) for kw in node.keywords if kw.arg is not None}}


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
        return {
            _resolve_value(k) if k is not None else None: _resolve_value(v)
            for k, v in zip(node.keys, node.values, strict=True)
        }
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
