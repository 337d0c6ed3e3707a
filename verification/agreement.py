"""Agreement with alternatives: other fleet members' answers (or samples) to the same request.

The answer-consistency signal of the mixture-of-thought cascade (Yue et al., ICLR 2024): an answer
that independent solvers reach too is more likely right. It is combined with the process checks,
never instead of them, and each alternative is weighed by its own checks: an alternative whose
arithmetic is wrong, whose label is no choice or whose call breaks the tool schema is weak
evidence (half a vote). What is compared, per kind:

| kind | compared | an alternative is sound when |
|---|---|---|
| math | final numbers, at the precision the answer states | its own process checks pass |
| classify | labels (case and spacing aside) | it is one of the choices |
| extract | every field | it is JSON matching the schema |
| tool_call | the calls, in any order and dialect | its own tool checks pass |

The check passes when the agreeing alternatives weigh at least one sound vote. An alternative that
cannot be read (no final number, not JSON, no call) is inconclusive and counts for nothing; when
every alternative is inconclusive the check passes with that said. Its reason names the
alternatives (by their 1-based position) that agree and those that do not, accepted or not.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slmflow.core.records import CheckResult, VerifyRequest
from verification import math as vm
from verification import text as tx
from verification import tool_calls
from verification.checks import matches_schema

COMPARABLE = frozenset({"math", "classify", "extract", "tool_call"})
WEAK = 0.5  # the vote of an alternative that fails its own checks
NAME = "alternatives"


@dataclass
class Vote:
    position: int  # 1-based, as in the request's list
    agrees: bool | None  # None: inconclusive
    sound: bool
    shown: str  # what the alternative says, for the reason

    @property
    def weight(self) -> float:
        return 1.0 if self.sound else WEAK


def check(req: VerifyRequest) -> CheckResult | None:
    """The agreement check; None when there are no alternatives or the kind is not comparable."""
    if not req.alternatives or req.kind not in COMPARABLE:
        return None
    try:
        votes = _VOTERS[req.kind](req)
    except (ValueError, TypeError, RecursionError) as exc:  # odd input never raises out of a check
        return CheckResult(name=NAME, passed=True, score=1.0, reason=f"inconclusive: {type(exc).__name__}")
    return verdict(votes)


def verdict(votes: list[Vote]) -> CheckResult:
    conclusive = [v for v in votes if v.agrees is not None]
    if not conclusive:
        return CheckResult(name=NAME, passed=True, score=1.0, reason="inconclusive: no alternative could be read")
    support = sum(v.weight for v in conclusive if v.agrees)
    against = sum(v.weight for v in conclusive if not v.agrees)
    share = support / (support + against)
    passed = support >= 1.0
    # Accepted: 0.5..1 by the share that agrees; rejected: below 0.5, by what support there was.
    score = 0.5 + 0.5 * share if passed else 0.5 * support
    return CheckResult(name=NAME, passed=passed, score=round(score, 4), reason=_reason(votes, passed))


def _reason(votes: list[Vote], passed: bool) -> str:
    agree = [v for v in votes if v.agrees]
    differ = [v for v in votes if v.agrees is False]
    parts = []
    if agree:
        parts.append("agrees with " + ", ".join(_who(v) for v in agree))
    elif not passed:
        parts.append("no alternative agrees")
    if differ:
        parts.append("differs from " + ", ".join(f"{_who(v)}: {v.shown}" for v in differ[:4]))
    unread = [str(v.position) for v in votes if v.agrees is None]
    if unread:
        parts.append(f"unreadable: {', '.join(unread)}")
    if agree and not passed:
        parts.append("the agreeing alternatives fail their own checks")
    return "; ".join(parts)


def _who(v: Vote) -> str:
    return f"alternative {v.position}" + ("" if v.sound else " (fails its own checks)")


# ---------------------------------------------------------------- math


def _math(req: VerifyRequest) -> list[Vote]:
    question = req.question or req.source
    stated = vm.analyse(question, req.text, req.finish_reason).final
    votes = []
    for i, alt in enumerate(req.alternatives, 1):
        a = vm.analyse(question, alt)
        if stated is None or a.final is None:
            votes.append(Vote(i, None, False, "no final number"))
            continue
        sound = all(c.passed for c in vm.checks_from(a))
        votes.append(Vote(i, same_number(a.final, stated), sound, _fmt(a.final)))
    return votes


def same_number(value: float, stated: float) -> bool:
    """Equal at the precision either side wrote (3.33 agrees with 10/3)."""
    return vm.close_enough(value, stated) or vm.close_enough(stated, value)


# ------------------------------------------------------------ classify


def _classify(req: VerifyRequest) -> list[Vote]:
    choices = {label(c) for c in req.choices or []}
    stated = label(req.output if isinstance(req.output, str) else req.text)
    votes = []
    for i, alt in enumerate(req.alternatives, 1):
        other = label(alt)
        if not other:
            votes.append(Vote(i, None, False, "empty"))
            continue
        votes.append(Vote(i, other == stated, not choices or other in choices, repr(_short(alt, 30))))
    return votes


def label(value: Any) -> str:
    return tx.normalise(str(value)).strip(" .\"'")


# ------------------------------------------------------------- extract


def _extract(req: VerifyRequest) -> list[Vote]:
    mine = dict(leaves(req.output)) if req.output is not None else None
    votes = []
    for i, alt in enumerate(req.alternatives, 1):
        try:
            other = json.loads(alt)
        except (json.JSONDecodeError, TypeError, RecursionError):
            votes.append(Vote(i, None, False, "not JSON"))
            continue
        if mine is None:
            votes.append(Vote(i, None, False, "the answer is not JSON"))
            continue
        theirs = dict(leaves(other))
        differ = sorted(p for p in set(mine) | set(theirs) if mine.get(p) != theirs.get(p))
        sound = req.json_schema is None or _valid(other, req.json_schema)
        shown = ", ".join(f"{p or '(root)'}={_short(theirs.get(p), 20)!r}" for p in differ[:3])
        votes.append(Vote(i, not differ, sound, shown))
    return votes


def _valid(value: Any, schema: dict[str, Any]) -> bool:
    probe = VerifyRequest(kind="extract", source="", text="", output=value, json_schema=schema)
    return matches_schema(probe).passed


def leaves(value: Any, path: str = ""):
    """(path, canonical value) for every scalar in a JSON value."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from leaves(v, f"{path}/{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from leaves(v, f"{path}[{i}]")
    else:
        yield path, canonical(value)


def canonical(value: Any) -> Any:
    """Loose equality: case and spacing of strings, 1 == 1.0 == "1"."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return round(float(value), 9)
    if isinstance(value, str):
        number = tx.parse_number(value) if re.fullmatch(r"\s*-?[\d.,]+\s*", value) else None
        return round(number, 9) if number is not None else tx.normalise(value)
    if isinstance(value, (list, tuple)):
        return tuple(canonical(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((str(k), repr(canonical(v))) for k, v in value.items()))
    return repr(value)


# ----------------------------------------------------------- tool_call


def _tool_call(req: VerifyRequest) -> list[Vote]:
    specs = tool_calls.normalise_tools(req.tools or [])
    names = set(specs)
    stated, _ = tool_calls.parse_calls(req.output if req.output is not None else req.text, names)
    question = req.question or req.source
    votes = []
    for i, alt in enumerate(req.alternatives, 1):
        other, _ = tool_calls.parse_calls(alt, names)
        if stated is None or other is None:
            votes.append(Vote(i, None, False, "no call"))
            continue
        a = tool_calls.analyse(question, alt, None, req.tools or [])
        sound = all(c.passed for c in tool_calls.checks_from(a))
        votes.append(Vote(i, same_calls(stated, other, specs), sound, ", ".join(c.name for c in other) or "no call"))
    return votes


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
            if canonical(a[key]) != canonical(b[key]):
                return False
        elif key in required:
            return False
    return True


_VOTERS: dict[str, Callable[[VerifyRequest], list[Vote]]] = {
    "math": _math,
    "classify": _classify,
    "extract": _extract,
    "tool_call": _tool_call,
}


def _fmt(value: float) -> str:
    return f"{value:.6g}" if not float(value).is_integer() else str(int(value))


def _short(value: Any, n: int) -> str:
    s = value if isinstance(value, str) else json.dumps(value, default=str)
    return s if len(s) <= n else s[: n - 1] + "…"
