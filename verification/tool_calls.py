"""Structural checks for function calls against the tools that were offered.

Tools come OpenAI-style (`{"type": "function", "function": {...}}`) or BFCL-style (`{"name",
"description", "parameters": {"type": "dict", ...}}`). Calls come as JSON (`{"name", "arguments"}`,
OpenAI `tool_calls`, `{fname: {args}}`) or as Python call syntax (`[f(a=1), g(b="x")]`, BFCL's
format). Text that holds no call is an abstention, which is right only when no tool fits.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from typing import Any

from slmflow.core.records import CheckResult, VerifyRequest
from verification import text as tx

# Verbs every tool description uses; they say nothing about which tool fits.
_GENERIC = frozenset(
    """
calculate compute find get retrieve given specific provide return returns based number value values
using use specified default certain information details data list type search query whether
""".split()
)
# A question sharing less than this share of its content stems with the best tool is off-topic.
MIN_RELEVANCE = 0.2

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "str": (str,),
    "integer": (int,),
    "int": (int,),
    "float": (int, float),
    "number": (int, float),
    "double": (int, float),
    "boolean": (bool,),
    "bool": (bool,),
    "array": (list, tuple),
    "list": (list, tuple),
    "tuple": (list, tuple),
    "dict": (dict,),
    "object": (dict,),
}
_FENCE = re.compile(r"```(?:json|python|tool_code)?\s*(.*?)```", re.S)


@dataclass
class Call:
    name: str
    arguments: dict[str, Any]


@dataclass
class ToolAnalysis:
    parsed: bool  # the output held a call, or was a clean abstention
    calls: list[Call]
    problems: list[str]  # structural faults, worst first
    relevance: float  # how well the best offered tool fits the question, 0..1
    call_relevance: float  # how well the called tools fit the question
    values_grounded: float  # share of argument values found in the question
    n_tools: int
    name_relevance: float = 0.0  # share of the called function's name words found in the question
    ungrounded_numbers: int = 0  # numeric argument values that the question never mentions
    ungrounded_strings: int = 0
    unused_question_numbers: int = 0  # numbers in the question that no argument carries
    missing_required: int = 0
    unknown_params: int = 0
    type_errors: int = 0
    enum_errors: int = 0
    unknown_functions: int = 0
    parse_error: str = ""
    abstained: bool = False
    ungrounded: list[Any] = field(default_factory=list)  # the argument values not found


def checks(req: VerifyRequest, min_grounded: float | None = None) -> list[CheckResult]:
    """The structural checks; with `min_grounded`, also that at least that share of the argument
    values appear in the request (its prompt, evidence and earlier observations)."""
    support = None
    if min_grounded is not None:
        support = "\n".join([req.source, req.question or "", *(e.text for e in req.evidence)])
    a = analyse(req.question or req.source, req.text, req.output, req.tools or [], support)
    # In a flow the offered tools are the job owner's allowlist for this very task: that they fit
    # is given, so word overlap may only question a decline, never a call.
    out = checks_from(a, judge_calls=min_grounded is None)
    if min_grounded is not None and a.parsed and a.calls:
        passed = a.values_grounded >= min_grounded
        out.append(
            CheckResult(
                name="arguments_grounded",
                passed=passed,
                score=round(a.values_grounded, 4),
                reason=""
                if passed
                else f"argument values not found in the request or evidence: {[_short(v) for v in a.ungrounded[:3]]}",
            )
        )
    return out


def checks_from(a: ToolAnalysis, judge_calls: bool = True) -> list[CheckResult]:
    if not a.parsed:
        return [CheckResult(name="tool_call_parse", passed=False, score=0.0, reason=a.parse_error)]
    out = [CheckResult(name="tool_call_parse", passed=True, score=1.0)]
    if a.problems:
        out.append(CheckResult(name="tool_call_schema", passed=False, score=0.0, reason="; ".join(a.problems[:3])))
    else:
        out.append(CheckResult(name="tool_call_schema", passed=True, score=1.0))
    fits = a.relevance >= MIN_RELEVANCE
    if a.abstained and fits:
        out.append(
            CheckResult(
                name="tool_relevance",
                passed=False,
                score=round(1 - a.relevance, 4),
                reason="no call made, although an offered tool fits the request",
            )
        )
    elif a.calls and not fits and judge_calls:
        out.append(
            CheckResult(
                name="tool_relevance",
                passed=False,
                score=round(a.relevance, 4),
                reason="no offered tool fits the request, so no call should be made",
            )
        )
    else:
        out.append(CheckResult(name="tool_relevance", passed=True, score=1.0))
    return out


def analyse(
    question: str, text: str, output: Any, tools: list[dict[str, Any]], support: str | None = None
) -> ToolAnalysis:
    """`question` decides which tools fit; `support` (default: the question) is where argument
    values must be found: in a flow, the prompt with its evidence and earlier observations."""
    specs = normalise_tools(tools)
    relevance = max((_relevance(question, s) for s in specs.values()), default=0.0)
    calls, error = parse_calls(output if output is not None else text, set(specs))
    if calls is None:
        return ToolAnalysis(
            parsed=False,
            calls=[],
            problems=[],
            relevance=relevance,
            call_relevance=0.0,
            values_grounded=0.0,
            n_tools=len(specs),
            parse_error=error,
        )
    a = ToolAnalysis(
        parsed=True,
        calls=calls,
        problems=[],
        relevance=relevance,
        call_relevance=0.0,
        values_grounded=1.0,
        n_tools=len(specs),
        abstained=not calls,
    )
    relevances, name_relevances = [], []
    for call in calls:
        spec = specs.get(call.name)
        if spec is None:
            a.unknown_functions += 1
            a.problems.append(f"calls unknown function {call.name!r}; offered: {sorted(specs)[:5]}")
            continue
        relevances.append(_relevance(question, spec))
        name_relevances.append(_name_relevance(question, call.name))
        _check_arguments(call, spec, a)
    a.call_relevance = min(relevances) if relevances else 0.0
    a.name_relevance = min(name_relevances) if name_relevances else 0.0
    _ground_values(support or question, calls, a)
    return a


def normalise_tools(tools: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """name -> {"description", "properties", "required"} for either tool dialect; junk is skipped."""
    out = {}
    for tool in tools if isinstance(tools, list) else []:
        if not isinstance(tool, dict):
            continue
        fn: dict[str, Any] = tool["function"] if isinstance(tool.get("function"), dict) else tool
        name = fn.get("name")
        if not isinstance(name, str):
            continue
        params: dict[str, Any] = fn["parameters"] if isinstance(fn.get("parameters"), dict) else {}
        props: dict[str, Any] = params["properties"] if isinstance(params.get("properties"), dict) else {}
        required: list[Any] = params["required"] if isinstance(params.get("required"), list) else []
        out[name] = {
            "name": name,
            "description": str(fn.get("description", "")),
            "properties": props,
            "required": [r for r in required if isinstance(r, str)],
        }
    return out


def parse_calls(output: Any, names: set[str]) -> tuple[list[Call] | None, str]:
    """The calls in a model's output; ([], "") for an abstention, (None, why) when unreadable."""
    if isinstance(output, (dict, list)):
        calls = _from_json(output, names)
        return (calls, "") if calls is not None else (None, "output is JSON but not a function call")
    if not isinstance(output, str):
        return None, f"output is {type(output).__name__}, not a function call"
    text = output.strip()
    fenced = _FENCE.search(text)
    if fenced:
        text = fenced.group(1).strip()
    if not text or text in ("[]", "{}", "null", "None"):
        return [], ""
    for candidate in _candidates(text):
        try:
            data = json.loads(candidate)
        except (json.JSONDecodeError, RecursionError):
            pass
        else:
            calls = _from_json(data, names)
            if calls is not None:
                return calls, ""
        calls = _from_python(candidate)
        if calls is not None:
            return calls, ""
    if re.search(r"[\w.]+\s*\(.*\)|[{\[]", text) and any(n in text for n in names):
        return None, f"cannot read the call in {text[:60]!r}"
    return [], ""  # prose with no call: the model declined


def _candidates(text: str) -> list[str]:
    """The whole text, then the outermost bracketed span, then a bare `name(...)` span."""
    out = [text]
    for open_, close in (("[", "]"), ("{", "}")):
        i, j = text.find(open_), text.rfind(close)
        if 0 <= i < j:
            out.append(text[i : j + 1])
    m = re.search(r"[A-Za-z_][\w.]*\s*\(.*\)", text, re.S)
    if m:
        out.append(m.group(0))
    return out


def _from_json(data: Any, names: set[str]) -> list[Call] | None:
    if isinstance(data, list):
        calls: list[Call] = []
        for item in data:
            got = _from_json(item, names)
            if got is None:
                return None
            calls.extend(got)
        return calls
    if not isinstance(data, dict):
        return None
    if isinstance(data.get("tool_calls"), list):
        return _from_json(data["tool_calls"], names)
    if isinstance(data.get("function"), dict):
        return _from_json(data["function"], names)
    if isinstance(data.get("name"), str):
        args: Any = next((data[k] for k in ("arguments", "parameters", "args") if k in data), {})
        if isinstance(args, str):
            try:
                args = json.loads(args) if args.strip() else {}
            except (json.JSONDecodeError, RecursionError):
                return None
        return [Call(data["name"], args)] if isinstance(args, dict) else None
    if len(data) == 1:
        ((name, args),) = data.items()
        if isinstance(args, dict) and (name in names or "." in name or "_" in name):
            return [Call(name, args)]
    return None


def _from_python(text: str) -> list[Call] | None:
    try:
        tree = ast.parse(text, mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    nodes = tree.elts if isinstance(tree, (ast.List, ast.Tuple)) else [tree]
    calls = []
    for node in nodes:
        if not isinstance(node, ast.Call) or node.args:
            return None
        name = _dotted(node.func)
        if name is None:
            return None
        args = {}
        for kw in node.keywords:
            if kw.arg is None:
                return None
            try:
                args[kw.arg] = ast.literal_eval(kw.value)
            except (ValueError, SyntaxError, TypeError, RecursionError, MemoryError):
                args[kw.arg] = ast.unparse(kw.value)  # an expression such as 'x**2' stays text
        calls.append(Call(name, args))
    return calls


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def _check_arguments(call: Call, spec: dict[str, Any], a: ToolAnalysis) -> None:
    props, args = spec["properties"], call.arguments
    for name in spec["required"]:
        if name not in args:
            a.missing_required += 1
            a.problems.append(f"{call.name}: required parameter {name!r} is missing")
    for name, value in args.items():
        if name not in props:
            a.unknown_params += 1
            a.problems.append(f"{call.name}: unknown parameter {name!r}; accepts {sorted(props)[:6]}")
            continue
        fault = _type_fault(value, props[name] if isinstance(props[name], dict) else {})
        if fault:
            if fault.startswith("not one of"):
                a.enum_errors += 1
            else:
                a.type_errors += 1
            a.problems.append(f"{call.name}: {name}={_short(value)} is {fault}")


def _type_fault(value: Any, schema: dict[str, Any]) -> str:
    """'' if `value` fits the parameter schema, else what is wrong with it."""
    enum = schema.get("enum")
    if isinstance(enum, list) and enum and value not in enum:
        return f"not one of {enum[:6]}"
    declared = schema.get("type")
    if not isinstance(declared, str) or declared in ("any", ""):
        return ""
    expected = _TYPES.get(declared.lower())
    if expected is None:
        return ""
    if isinstance(value, bool) and bool not in expected:
        return f"a boolean, expected {declared}"
    if not isinstance(value, expected):
        return f"a {type(value).__name__}, expected {declared}"
    items = schema.get("items")
    if isinstance(value, (list, tuple)) and isinstance(items, dict):
        for v in value:
            fault = _type_fault(v, items)
            if fault:
                return f"a list whose item {_short(v)} is {fault}"
    return ""


def _relevance(question: str, spec: dict[str, Any]) -> float:
    """Share of the question's topical stems that the tool's name, description or parameters use."""
    q = {s for s in tx.stems(question) if s not in _GENERIC}
    if not q:
        return 0.0
    name_words = " ".join(re.split(r"[._]|(?<=[a-z])(?=[A-Z])", spec["name"]))
    param_text = " ".join(
        f"{k} {v.get('description', '') if isinstance(v, dict) else ''}" for k, v in spec["properties"].items()
    )
    tool = tx.stems(f"{name_words} {spec['description']} {param_text.replace('_', ' ')}")
    prefixes = {t[:4] for t in tool if len(t) >= 4}
    # Tool names abbreviate ('prob' for probability): a shared 4-letter start counts as a match.
    return sum(s in tool or (len(s) >= 4 and s[:4] in prefixes) for s in q) / len(q)


def _name_relevance(question: str, name: str) -> float:
    words = [w for w in re.split(r"[._\s]|(?<=[a-z])(?=[A-Z])", name) if len(w) > 2]
    q = tx.stems(question)
    prefixes = {w[:4] for w in q if len(w) >= 4}
    hits = [tx.stem(w) in q or w[:4].lower() in prefixes for w in words if w.lower() not in _GENERIC]
    return sum(hits) / len(hits) if hits else 0.0


def _ground_values(question: str, calls: list[Call], a: ToolAnalysis) -> None:
    """Argument values should come from the request; numbers are compared as numbers."""
    q_lower = question.lower()
    q_words = tx.content_tokens(question)
    q_numbers = {abs(v) for v in tx.number_values(question)}
    known = q_numbers | tx.implied_numbers(question)
    used: set[float] = set()
    found = total = 0
    for value in (v for c in calls for v in _leaves(c.arguments)):
        if isinstance(value, bool) or value in ("", None):
            continue
        total += 1
        if isinstance(value, (int, float)):
            hit = any(tx.same_number(abs(value), n, 1e-6) for n in known)
            used.add(abs(value))
            a.ungrounded_numbers += not hit
        elif isinstance(value, str):
            words = tx.content_tokens(value)
            hit = value.lower() in q_lower or (bool(words) and words <= q_words)
            used.update(abs(v) for v in tx.number_values(value))
            a.ungrounded_strings += not hit
        else:
            continue
        found += hit
        if not hit:
            a.ungrounded.append(value)
    a.values_grounded = found / total if total else 1.0
    a.unused_question_numbers = sum(not any(tx.same_number(q, u, 1e-6) for u in used) for q in q_numbers)


def _leaves(value: Any):
    if isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _leaves(v)
    else:
        yield value


def _short(value: Any, n: int = 30) -> str:
    s = json.dumps(value, default=str)
    return s if len(s) <= n else s[: n - 1] + "…"
