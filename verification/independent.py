"""Independent answers: a second opinion that never sees the answer it checks.

Not self-critique. Nobody is asked whether an answer is right; the task is solved again, by other
means, and the two results are compared:

- **program of thought** (math): a model writes a short Python program for the problem; it runs
  in `verification.sandbox`, and what it prints is compared with the answer's final number.
- **cross model** (math, classify, extract, tool_call): another small model of the fleet answers
  the same task, and its result (final number, label, extracted fields, calls) is compared.

An independent answer that cannot be had (the model failed, the program crashed or printed no
number, the output did not parse) is *inconclusive*: the check passes with the reason noted, so a
flaky second opinion never rejects an answer on its own. A disagreement fails the check.

The models are reached through the flow's `Workers` protocol (`small(GenerationRequest)`), so
tests pass a fake and `slmflow verify --fleet` passes the running fleet
(`workers.crosscheck.connect_fleet`). Nothing here knows Ray or Prefect.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from slmflow.core.records import (
    CheckResult,
    Draft,
    GenerationRequest,
    Message,
    TaskKind,
    VerifyRequest,
)
from verification import math as vm
from verification import text as tx
from verification import tool_calls
from verification.sandbox import Limits, SandboxResult, run_python

COMPARABLE = frozenset({"math", "classify", "extract", "tool_call"})

PROGRAM_PROMPT = (
    "Write a short Python 3 program that computes the answer to the problem and prints only "
    "the final number. Use only the standard library (math and fractions are available); no "
    "input, files or network. Reply with the program alone in one ```python code block."
)
SOLVE_PROMPT = (
    "Solve the problem. Show the arithmetic briefly, then end with a last line 'The answer is N', where N is a number."
)
CLASSIFY_PROMPT = "Classify the request. Reply with exactly one of: {choices}."
EXTRACT_PROMPT = (
    "Extract the requested fields as JSON matching this schema, copying values verbatim from "
    "the text; use null when a value is absent.\nSchema: {schema}"
)
TOOL_PROMPT = (
    "You can call these functions:\n{tools}\n\nReply with the call or calls for the request as "
    'a JSON list [{{"name": ..., "arguments": {{...}}}}], or with [] if no function fits.'
)


class SmallWorker(Protocol):
    """The part of `flows.cascade.Workers` an independent answer needs."""

    def small(self, request: GenerationRequest) -> Draft: ...


@dataclass
class Outcome:
    """One independent answer, compared with the answer under test."""

    name: str  # "program_of_thought" | "cross_model"
    agree: bool | None  # None: inconclusive
    detail: str
    score: float = 1.0  # share of the answer the independent one agrees with (extract: fields)

    def check(self) -> CheckResult:
        if self.agree is None:
            return CheckResult(name=self.name, passed=True, score=1.0, reason=f"inconclusive: {self.detail}")
        if self.agree:
            return CheckResult(name=self.name, passed=True, score=1.0, reason=self.detail)
        return CheckResult(name=self.name, passed=False, score=round(min(self.score, 1.0), 4), reason=self.detail)


def agreement(outcomes: list[Outcome]) -> tuple[float, float]:
    """(checked, agree) as features: whether any independent answer was conclusive, and the
    share of conclusive ones that agree (0.5 when none was)."""
    conclusive = [o for o in outcomes if o.agree is not None]
    if not conclusive:
        return 0.0, 0.5
    return 1.0, sum(bool(o.agree) for o in conclusive) / len(conclusive)


class IndependentChecker:
    def __init__(
        self,
        workers: SmallWorker,
        *,
        program_of_thought: bool = True,
        cross_model: bool = True,
        limits: Limits = Limits(),
        max_tokens: int = 512,
        run: Callable[[str, Limits], SandboxResult] = run_python,
    ):
        self.workers = workers
        self.program_of_thought = program_of_thought
        self.cross_model = cross_model
        self.limits = limits
        self.max_tokens = max_tokens
        self._run = run

    def checks(self, req: VerifyRequest) -> list[CheckResult]:
        return [o.check() for o in self.outcomes(req)]

    def outcomes(self, req: VerifyRequest) -> list[Outcome]:
        if req.kind not in COMPARABLE:
            return []
        out = []
        if req.kind == "math" and self.program_of_thought:
            out.append(self._guard("program_of_thought", lambda: self._program(req)))
        if self.cross_model:
            out.append(self._guard("cross_model", lambda: self._cross(req)))
        return out

    def _guard(self, name: str, fn: Callable[[], Outcome]) -> Outcome:
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - a second opinion that fails is no opinion
            return Outcome(name, None, f"no independent answer ({type(exc).__name__}: {_short(str(exc), 80)})")

    def _ask(self, kind: TaskKind, system: str, user: str, **extra: Any) -> Draft:
        return self.workers.small(
            GenerationRequest(
                kind=kind,
                messages=[Message(role="system", content=system), Message(role="user", content=user)],
                max_tokens=self.max_tokens,
                temperature=0.0,
                **extra,
            )
        )

    # ------------------------------------------------------------------ math

    def _program(self, req: VerifyRequest) -> Outcome:
        name = "program_of_thought"
        stated = _stated_number(req)
        if stated is None:
            return Outcome(name, None, "the answer states no final number")
        draft = self._ask("answer", PROGRAM_PROMPT, req.question or req.source)
        code = program_from(draft.text)
        if not code:
            return Outcome(name, None, "the model wrote no program")
        result = self._run(code, self.limits)
        if not result.ok:
            return Outcome(name, None, f"the program failed: {result.error}")
        value = printed_number(result.stdout)
        if value is None:
            return Outcome(name, None, f"the program printed no number ({_short(result.stdout.strip(), 40)!r})")
        percent = bool(re.search(r"%|percent", req.question or req.source, re.I))
        agree = same_result(value, stated) or (percent and same_result(100 * value, stated))
        return Outcome(
            name,
            agree,
            "" if agree else f"a program written independently prints {_fmt(value)}; the answer states {_fmt(stated)}",
            score=0.0,
        )

    def _cross(self, req: VerifyRequest) -> Outcome:
        return {
            "math": self._cross_math,
            "classify": self._cross_classify,
            "extract": self._cross_extract,
            "tool_call": self._cross_tool,
        }[req.kind](req)

    def _cross_math(self, req: VerifyRequest) -> Outcome:
        stated = _stated_number(req)
        if stated is None:
            return Outcome("cross_model", None, "the answer states no final number")
        question = req.question or req.source
        draft = self._ask("answer", SOLVE_PROMPT, question)
        if draft.finish_reason == "length":
            return Outcome("cross_model", None, f"{draft.model}'s answer was cut off")
        other = vm.analyse(question, draft.text).final
        if other is None:
            return Outcome("cross_model", None, f"{draft.model} stated no number")
        agree = same_result(other, stated) or same_result(stated, other)
        return Outcome(
            "cross_model",
            agree,
            "" if agree else f"{draft.model} answers {_fmt(other)} independently; the answer states {_fmt(stated)}",
            score=0.0,
        )

    # ------------------------------------------------------------- classify

    def _cross_classify(self, req: VerifyRequest) -> Outcome:
        choices = req.choices or []
        stated = req.output if isinstance(req.output, str) else req.text
        draft = self._ask(
            "classify", CLASSIFY_PROMPT.format(choices=", ".join(choices)), req.source, choices=choices or None
        )
        other = draft.output if isinstance(draft.output, str) else draft.text
        if choices and _label(other) not in {_label(c) for c in choices}:
            return Outcome("cross_model", None, f"{draft.model} answered {_short(other, 30)!r}, not a choice")
        agree = _label(other) == _label(stated)
        return Outcome(
            "cross_model",
            agree,
            ""
            if agree
            else f"{draft.model} classifies it as {_short(other, 30)!r} independently, not {_short(stated, 30)!r}",
            score=0.0,
        )

    # -------------------------------------------------------------- extract

    def _cross_extract(self, req: VerifyRequest) -> Outcome:
        if req.output is None:
            return Outcome("cross_model", None, "the answer is not JSON")
        schema = req.json_schema or {}
        draft = self._ask(
            "extract", EXTRACT_PROMPT.format(schema=json.dumps(schema)), req.source, json_schema=req.json_schema
        )
        other = draft.output
        if other is None:
            try:
                other = json.loads(draft.text)
            except (json.JSONDecodeError, TypeError, RecursionError):
                return Outcome("cross_model", None, f"{draft.model}'s extraction is not JSON")
        mine, theirs = dict(_leaves(req.output)), dict(_leaves(other))
        paths = sorted(set(mine) | set(theirs))
        differ = [p for p in paths if mine.get(p) != theirs.get(p)]
        share = 1 - len(differ) / len(paths) if paths else 1.0
        if not differ:
            return Outcome("cross_model", True, "", 1.0)
        shown = ", ".join(
            f"{p or '(root)'}: {_short(theirs.get(p), 20)!r} vs {_short(mine.get(p), 20)!r}" for p in differ[:3]
        )
        return Outcome("cross_model", False, f"{draft.model} extracts differently ({shown})", share)

    # ------------------------------------------------------------ tool_call

    def _cross_tool(self, req: VerifyRequest) -> Outcome:
        specs = tool_calls.normalise_tools(req.tools or [])
        names = set(specs)
        stated, _ = tool_calls.parse_calls(req.output if req.output is not None else req.text, names)
        if stated is None:
            return Outcome("cross_model", None, "the answer's call does not parse")
        draft = self._ask("answer", TOOL_PROMPT.format(tools=json.dumps(req.tools or [])), req.question or req.source)
        other, _ = tool_calls.parse_calls(draft.output if isinstance(draft.output, (dict, list)) else draft.text, names)
        if other is None:
            return Outcome("cross_model", None, f"{draft.model}'s call does not parse")
        agree = same_calls(stated, other, specs)
        if agree:
            return Outcome("cross_model", True, "")
        theirs = ", ".join(c.name for c in other) or "no call"
        mine = ", ".join(c.name for c in stated) or "no call"
        what = "calls" if theirs != mine else "arguments"
        return Outcome(
            "cross_model", False, f"{draft.model} makes different {what} independently ({theirs} vs {mine})", score=0.0
        )


# ---------------------------------------------------------------- helpers

_CODE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)(?:```|\Z)", re.S | re.I)


def program_from(text: str) -> str:
    """The program in a model's reply: the longest fenced block, else the text if it looks like
    code. A PAL-style `def solution(): ... return x` with no print gets one."""
    if not isinstance(text, str):
        return ""
    blocks = [b.strip() for b in _CODE.findall(text) if b.strip()]
    if blocks:
        code = max(blocks, key=len)
    elif re.search(r"^\s*(?:print\(|def |import |from |[A-Za-z_]\w*\s*=)", text, re.M):
        code = text.strip()
    else:
        return ""
    if "print(" not in code:
        fn = next((f for f in ("solution", "solve", "main", "answer") if re.search(rf"\bdef {f}\(\s*\)", code)), None)
        if fn:
            code += f"\n\nprint({fn}())"
    return code


_FRACTION = re.compile(r"^\s*(-?\d+)\s*/\s*(\d+)\s*$")


def printed_number(stdout: str) -> float | None:
    """The program's result: the last number of its last non-empty line (a printed Fraction, such
    as 7/2, is read whole)."""
    line = next((ln for ln in reversed(stdout.splitlines()) if ln.strip()), "")
    m = _FRACTION.match(line)
    if m and int(m.group(2)):
        return int(m.group(1)) / int(m.group(2))
    numbers = tx.number_values(line)
    return numbers[-1] if numbers else None


def same_result(value: float, stated: float) -> bool:
    """`value` agrees with `stated` at the precision `stated` was written in."""
    return vm.close_enough(value, stated)


def same_calls(stated: list[tool_calls.Call], other: list[tool_calls.Call], specs: dict[str, dict[str, Any]]) -> bool:
    """The same calls in any order. Arguments both give must match (loosely: case, spacing,
    1 == 1.0); one that only one side gives counts only when the function requires it, as
    optional arguments are often left at their defaults."""
    if len(stated) != len(other):
        return False
    left = list(other)
    for call in stated:
        required = set(specs.get(call.name, {}).get("required", []))
        match = next(
            (c for c in left if c.name == call.name and _same_arguments(call.arguments, c.arguments, required)), None
        )
        if match is None:
            return False
        left.remove(match)
    return True


def _same_arguments(a: dict[str, Any], b: dict[str, Any], required: set[str]) -> bool:
    if not isinstance(a, dict) or not isinstance(b, dict):
        return a == b
    for key in set(a) | set(b):
        if key in a and key in b:
            if _canonical(a[key]) != _canonical(b[key]):
                return False
        elif key in required:
            return False
    return True


def _canonical(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return round(float(value), 9)
    if isinstance(value, str):
        number = tx.parse_number(value) if re.fullmatch(r"\s*-?[\d.,]+\s*", value) else None
        return round(number, 9) if number is not None else tx.normalise(value)
    if isinstance(value, (list, tuple)):
        return tuple(_canonical(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((str(k), repr(_canonical(v))) for k, v in value.items()))
    return repr(value)


def _leaves(value: Any, path: str = ""):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, f"{path}/{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _leaves(v, f"{path}[{i}]")
    else:
        yield path, _canonical(value)


def _stated_number(req: VerifyRequest) -> float | None:
    return vm.analyse(req.question or req.source, req.text, req.finish_reason).final


def _label(value: Any) -> str:
    return tx.normalise(str(value)).strip(" .\"'")


def _fmt(value: float) -> str:
    return f"{value:.6g}" if not float(value).is_integer() else str(int(value))


def _short(value: Any, n: int) -> str:
    s = value if isinstance(value, str) else json.dumps(value, default=str)
    return s if len(s) <= n else s[: n - 1] + "…"
