"""Independent answers, produced live: a second opinion that never sees the answer it checks.

Not self-critique. Nobody is asked whether an answer is right; the task is solved again, and the
results are compared:

- **alternatives** (math, classify, extract, tool_call): a fleet member answers the same request
  `n` times (another small model, or samples of one at a temperature); `alternatives()` returns
  their raw answers, which go into `VerifyRequest.alternatives` and are compared by
  `verification.agreement`, the same function that judges alternatives given offline in a
  `slmflow verify` line. The flow (`flows.cascade`) and `slmflow verify --fleet` both call it.
- **program of thought** (math): a model writes a short Python program for the problem; it runs
  in `verification.sandbox`, and what it prints is compared with the answer's final number.

An independent answer that cannot be had (the model failed, the program crashed or printed no
number) is *inconclusive*: it never rejects an answer on its own.

Answers come from a plain callable `small(GenerationRequest) -> Draft` (the flow's
`Workers.small`), so tests pass a fake and `slmflow verify --fleet` passes the running fleet
(`workers.crosscheck.connect_fleet`). Nothing here knows Ray or Prefect.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slmflow.core.records import CheckResult, Draft, GenerationRequest, Message, TaskKind, VerifyRequest
from verification import math as vm
from verification import text as tx
from verification.agreement import COMPARABLE
from verification.sandbox import Limits, SandboxResult, run_python

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
Small = Callable[[GenerationRequest], Draft]


def alternatives(
    req: VerifyRequest, small: Small, n: int = 1, temperature: float = 0.0, max_tokens: int = 512
) -> list[str]:
    """`n` answers to `req`'s task by `small`, as raw text in the form `slmflow verify` takes
    them. The prompt carries the request, never the answer under test. Answers that fail or were
    cut off are left out (an alternative that cannot be had is no evidence either way)."""
    if req.kind not in COMPARABLE or n < 1:
        return []
    request = _request(req, max_tokens, temperature)
    out = []
    for _ in range(n):
        try:
            draft = small(request)
        except Exception:  # noqa: BLE001 - a second opinion that fails is no opinion
            continue
        if draft.finish_reason == "length":
            continue
        out.append(_as_text(req.kind, draft))
    return out


def with_alternatives(
    req: VerifyRequest, small: Small, n: int = 1, temperature: float = 0.0, max_tokens: int = 512
) -> VerifyRequest:
    """`req` with `n` live alternatives added to those it already carries."""
    if req.kind not in COMPARABLE or n < 1:
        return req
    more = alternatives(req, small, n, temperature, max_tokens)
    return req.model_copy(update={"alternatives": [*req.alternatives, *more]})


def _request(req: VerifyRequest, max_tokens: int, temperature: float) -> GenerationRequest:
    kind: TaskKind = "answer"
    extra: dict[str, Any] = {}
    if req.kind == "math":
        system, user = SOLVE_PROMPT, req.question or req.source
    elif req.kind == "classify":
        kind, extra = "classify", {"choices": req.choices or None}
        system, user = CLASSIFY_PROMPT.format(choices=", ".join(req.choices or [])), req.source
    elif req.kind == "extract":
        kind, extra = "extract", {"json_schema": req.json_schema}
        system, user = EXTRACT_PROMPT.format(schema=json.dumps(req.json_schema or {})), req.source
    else:
        system, user = TOOL_PROMPT.format(tools=json.dumps(req.tools or [])), req.question or req.source
    return GenerationRequest(
        kind=kind,
        messages=[Message(role="system", content=system), Message(role="user", content=user)],
        max_tokens=max_tokens,
        temperature=temperature,
        **extra,
    )


def _as_text(kind: str, draft: Draft) -> str:
    """The draft as a verify line's answer: the label, the JSON, the call(s) or the worked text."""
    if kind == "classify" and isinstance(draft.output, str):
        return draft.output
    if kind in ("extract", "tool_call") and isinstance(draft.output, (dict, list)):
        return json.dumps(draft.output)
    return draft.text


@dataclass
class Outcome:
    """One program of thought, compared with the answer under test."""

    name: str
    agree: bool | None  # None: inconclusive
    detail: str

    def check(self) -> CheckResult:
        if self.agree is None:
            return CheckResult(name=self.name, passed=True, score=1.0, reason=f"inconclusive: {self.detail}")
        if self.agree:
            return CheckResult(name=self.name, passed=True, score=1.0, reason=self.detail)
        return CheckResult(name=self.name, passed=False, score=0.0, reason=self.detail)


class IndependentChecker:
    """What `Verifier(independent=...)` asks of a fleet member per request: live alternatives
    (`cross_model`, judged by `verification.agreement`) and, for math, a program of thought."""

    def __init__(
        self,
        small: Small,
        *,
        program_of_thought: bool = True,
        cross_model: bool = True,
        n: int = 1,
        limits: Limits = Limits(),
        max_tokens: int = 512,
        run: Callable[[str, Limits], SandboxResult] = run_python,
    ):
        self.small = small
        self.program_of_thought = program_of_thought
        self.cross_model = cross_model
        self.n = n
        self.limits = limits
        self.max_tokens = max_tokens
        self._run = run

    def extend(self, req: VerifyRequest) -> tuple[VerifyRequest, list[CheckResult]]:
        """(`req` with live alternatives added, the program-of-thought check if any)."""
        if self.cross_model:
            req = with_alternatives(req, self.small, self.n, 0.0, self.max_tokens)
        if req.kind != "math" or not self.program_of_thought:
            return req, []
        try:
            outcome = self._program(req)
        except Exception as exc:  # noqa: BLE001 - a second opinion that fails is no opinion
            outcome = Outcome("program_of_thought", None, f"no program ({type(exc).__name__}: {_short(str(exc), 80)})")
        return req, [outcome.check()]

    def _program(self, req: VerifyRequest) -> Outcome:
        name = "program_of_thought"
        stated = vm.analyse(req.question or req.source, req.text, req.finish_reason).final
        if stated is None:
            return Outcome(name, None, "the answer states no final number")
        draft = self.small(
            GenerationRequest(
                kind="answer",
                messages=[
                    Message(role="system", content=PROGRAM_PROMPT),
                    Message(role="user", content=req.question or req.source),
                ],
                max_tokens=self.max_tokens,
                temperature=0.0,
            )
        )
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


def _fmt(value: float) -> str:
    return f"{value:.6g}" if not float(value).is_integer() else str(int(value))


def _short(value: Any, n: int) -> str:
    s = value if isinstance(value, str) else json.dumps(value, default=str)
    return s if len(s) <= n else s[: n - 1] + "…"
