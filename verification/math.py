"""Process checks for worked arithmetic: every step is recomputed, every operand must come from
the question or an earlier step, and the final answer must follow from the work.

Solutions arrive as models write them. Steps are read from GSM8K calculator annotations
(`<<48/2=24>>`) and from inline equations in prose: `3 * 60 = 180`, `$12 x 5 = $60`,
`20% of 50 = 10`, `6 liters + 9 liters = 15 liters`, chains that rewrite an expression until it
is a number (`(-9 - 5 - 0) = (-9 - 5) = -14`), parentheses and negatives, LaTeX and Markdown.
Single capital letters are variables: `A = (-9 - 5 - 0) = -14` defines A, and a later
`A - B = -14 - 2` is checked by substitution. The final answer comes from `#### N`,
`\\boxed{N}`, `A: N`, `(So) the answer is N`, or else the last number of the last sentence that
has one. A question that is itself an arithmetic expression (`((3 + 4) * -2) =`) is evaluated and
the answer compared with it. Nothing here raises on odd text: what cannot be read is reported,
not thrown.
"""

from __future__ import annotations

import ast
import operator
import re
from dataclasses import dataclass, field

from slmflow.core.records import CheckResult, VerifyRequest
from verification import text as tx

# World knowledge a solution may use without it being in the question: unit conversions
# (7 days, 12 months, 24 hours, 60 minutes, 52 weeks, 365 days, 100 cents or percent, ...).
CONSTANTS = frozenset(
    {0.0, 1.0, 2.0, 10.0, 100.0, 1000.0, 7.0, 12.0, 24.0, 30.0, 31.0, 52.0, 60.0, 365.0, 0.5, 0.1, 0.01, 3600.0}
)

_NUM = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?%?|\.\d+%?"
# A variable: one capital letter standing alone ("A", not "As" or "A's").
_VAR = r"(?<![\w'])[A-Z](?![\w'])"
# Atomic groups and possessive runs: free text has long runs of spaces, and a backtracking
# pattern over them takes minutes on one line.
_ATOM = rf"(?>[(\s]*+-?\s*+(?>\d+(?:\.\d+)?%?|\.\d+%?|{_VAR})(?![A-Za-z_])[)\s]*+)"
_EXPR = rf"{_ATOM}(?:[-+*/^]{_ATOM})*+"
_CHAIN = re.compile(rf"(?<![\w.]){_EXPR}(?:={_EXPR})++")
_LONE_VAR = re.compile(rf"^[(\s]*({_VAR})[)\s]*$")
_SYMBOLIC_BEFORE = re.compile(r"[A-Za-z]\s*\)*\s*[-+*/^(]\s*$")
# `$400 000`: thousands grouped by spaces, as much of the world writes them.
_SPACED_THOUSANDS = re.compile(r"(?<![\d.,])\d{1,3}(?: \d{3})+(?![\d.,]\d)")
_MIXED_FRACTION = re.compile(r"(?<![\d./])(\d+)\s+(\d+)/(\d+)(?![\d.])")
_FRAC = re.compile(r"\\[dt]?frac\{([^{}]+)\}\{([^{}]+)\}")
_LATEX = [
    ("\\times", "*"),
    ("\\cdot", "*"),
    ("\\div", "/"),
    ("\\*", "*"),
    ("\\$", "$"),
    ("\\%", "%"),
    ("\\(", ""),
    ("\\)", ""),
    ("\\[", ""),
    ("\\]", ""),
    ("\\,", ""),
    ("\\!", ""),
    ("\\left", ""),
    ("\\right", ""),
]
# Markdown list markers and headings start a line; they are layout, not numbers or minus signs.
_LIST_MARKER = re.compile(r"^[ \t]*(?:[-*+•]|\d{1,2}[.)]|#{1,3})[ \t]+", re.M)
_IMPLICIT_TIMES = re.compile(r"(?<=[\d)])\s*(?=\()|(?<=\))\s*(?=[\d(])")
_ANNOTATION = re.compile(r"<<([^<>]*)>>")
_TIMES = re.compile(r"(?<=[\d)%])\s*(?:[xX×∗·]|\btimes\b)\s*(?=[\d(.$])")
_PERCENT_OF = re.compile(r"(?<=\d%)\s+of\s+(?=[\d($])")
_CURRENCY = re.compile(r"[$€£]")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
# Units and notes between a number and the operator that follows it: `6 liters + 9 liters`,
# `20 (adult servings) x 10`. Words only, at most three, so prose between sentences is untouched.
_UNIT = re.compile(r"(?<=\d)[ \t]+(?:[a-z][a-z.']*[ \t]+){1,3}?(?=[-+*/=×÷]|x[ \t(\d$])")
_NOTE = re.compile(r"[ \t]*\((?=[^()]*[a-z]{2})[^()\d]*\)")

_FINAL_MARKERS = [
    re.compile(rf"####\s*\$?\s*(-?(?:{_NUM}))"),
    re.compile(rf"\\boxed\{{\s*\$?\\?\$?\s*(-?(?:{_NUM}))"),
    re.compile(rf"(?:^|\n)\s*(?:A|Answer|Final answer)\s*:\s*\$?\s*(-?(?:{_NUM}))", re.I),
    re.compile(rf"answer\s+(?:is|=|would be|will be)\s*:?\s*\$?\s*(-?(?:{_NUM}))", re.I),
]
_OPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}
# Words that, in a line of worked arithmetic, ask for one operation. Deliberately few and
# unambiguous: "each" and "per" go either way, so they are not here.
_CUES = {
    "-": frozenset(
        "left remaining remains remain fewer spent lost minus subtract difference change loses gave".split()
    ),
    "+": frozenset("total altogether combined sum together plus add added".split()),
    "*": frozenset("times twice double triple product multiply multiplied".split()),
    "/": frozenset("half divide divided split average quarter shared".split()),
}
_ASK_WORDS = frozenset("many much total number amount altogether will would does did cost".split())
_ENDINGS = (".", "!", "?", ")", "]", "}", '"', "'", "*", "`", "$")


@dataclass
class Step:
    line: int
    expression: str
    claimed: float
    computed: float | None
    operands: list[float]
    correct: bool
    ungrounded: list[float] = field(default_factory=list)
    # The line's words call for an operation its arithmetic never does ("left" with no minus).
    cue_conflict: bool = False
    # The first link of the chain that does not hold, as `left = right` (left's value in brackets).
    wrong_link: str = ""


@dataclass
class MathAnalysis:
    steps: list[Step]
    final: float | None
    final_explicit: bool  # stated with a marker (####, "the answer is") rather than inferred
    final_in_work: bool  # the final answer is a result computed or stated in the work
    final_is_last_result: bool
    truncated: str  # why the text looks cut off; "" if it does not
    question_numbers: set[float]
    question_numbers_used: float  # share of the question's numbers that the work mentions
    # The question's ask cues an operation ("how many are left") that the last step does not do.
    ask_conflict: bool
    # Share of the ask's content words ("how many pages does the book have") found in the line of
    # the last step, and in the line of the step whose result is the final answer: a solution that
    # stops early or reports an intermediate result talks about something else there.
    ask_in_last_step: float
    ask_in_final_step: float
    lines: int
    chars: int
    # The value of a question that is itself an arithmetic expression; None for word problems.
    expected: float | None = None

    @property
    def wrong_steps(self) -> list[Step]:
        return [s for s in self.steps if not s.correct]

    @property
    def ungrounded_steps(self) -> list[Step]:
        return [s for s in self.steps if s.ungrounded]


def analyse(question: str, solution: str, finish_reason: str | None = None) -> MathAnalysis:
    question = _join_thousands(question) if isinstance(question, str) else ""
    text = _plain(solution) if isinstance(solution, str) else ""
    body, final, explicit = _final_answer(text)
    q_numbers = {abs(v) for v in tx.number_values(question)}
    expected = expected_value(question)
    # A question that is an expression is solved by rewriting it: every link of a chain must keep
    # the value, and none may start a new operation from the previous result.
    reader = _Reader(
        set(q_numbers) | _derived(q_numbers) | tx.implied_numbers(question) | CONSTANTS,
        continuations=expected is None,
    )
    steps: list[Step] = []
    body_lines = body.splitlines()
    for i, raw_line in enumerate(body_lines, 1):
        steps.extend(reader.line(i, raw_line))
    results = [s.claimed for s in steps]
    work_numbers = {abs(v) for v in tx.number_values(_ANNOTATION.sub(" ", body))} | {abs(r) for r in results}
    # A result of 0.25 reported as 25 is the same answer in percent.
    final_in_work = final is not None and _member(abs(final), work_numbers | {100 * w for w in work_numbers})
    final_is_last = final is not None and bool(results) and tx.same_number(final, results[-1], 1e-4)
    mentioned = work_numbers | {abs(v) for s in steps for v in s.operands}
    used = (sum(_member(q, mentioned) for q in q_numbers) / len(q_numbers)) if q_numbers else 1.0
    ask = _ask(question)
    asked = _cued_operators(ask)
    ask_conflict = bool(asked and steps) and not (asked & set(steps[-1].expression))
    ask_words = tx.stems(ask) - _ASK_WORDS
    final_step = next(
        (s for s in reversed(steps) if final is not None and tx.same_number(s.claimed, final, 1e-4)), None
    )

    def ask_share(step: Step | None) -> float:
        if step is None or not ask_words:
            return 0.0
        return len(ask_words & tx.stems(body_lines[step.line - 1])) / len(ask_words)

    return MathAnalysis(
        steps=steps,
        final=final,
        final_explicit=explicit,
        final_in_work=final_in_work,
        ask_conflict=ask_conflict,
        ask_in_last_step=ask_share(steps[-1] if steps else None),
        ask_in_final_step=ask_share(final_step),
        final_is_last_result=final_is_last,
        truncated=_truncation(text, finish_reason, final, explicit),
        question_numbers=q_numbers,
        question_numbers_used=used,
        lines=len([ln for ln in text.splitlines() if ln.strip()]),
        chars=len(text),
        expected=expected,
    )


def expected_value(question: str) -> float | None:
    """The value of a question that is nothing but arithmetic (`((-1 * 9) + 4) =`, `What is
    3 + 4 * 2?`): the one kind of math question a program can answer exactly."""
    body = re.sub(r"^\s*(?:what\s+is|calculate|compute|evaluate|solve)\s*:?", "", question.strip(), flags=re.I)
    body = normalise_expression(body.rstrip(" \t\n=?.").strip())
    if not body or not _has_operator(body) or not re.fullmatch(r"[\d\s.+\-*/^()%]+", body):
        return None
    return evaluate(body)


def checks(req: VerifyRequest) -> list[CheckResult]:
    a = analyse(req.question or req.source, req.text, req.finish_reason)
    return checks_from(a)


def checks_from(a: MathAnalysis) -> list[CheckResult]:
    out = []
    if a.truncated:
        out.append(CheckResult(name="finished", passed=False, score=0.0, reason=a.truncated))
    else:
        out.append(CheckResult(name="finished", passed=True, score=1.0))
    if a.final is None:
        out.append(
            CheckResult(
                name="result_stated", passed=False, score=0.0, reason="the answer never states a numeric result"
            )
        )
    else:
        out.append(CheckResult(name="result_stated", passed=True, score=1.0))
    wrong = a.wrong_steps
    if wrong:
        s = wrong[0]
        out.append(
            CheckResult(
                name="arithmetic",
                passed=False,
                score=round(1 - len(wrong) / len(a.steps), 4),
                reason=f"line {s.line}: {s.wrong_link}",
            )
        )
    else:
        out.append(
            CheckResult(
                name="arithmetic", passed=True, score=1.0, reason="" if a.steps else "no arithmetic steps to check"
            )
        )
    loose = a.ungrounded_steps
    if loose:
        s = loose[0]
        out.append(
            CheckResult(
                name="numbers_grounded",
                passed=False,
                score=round(1 - len(loose) / len(a.steps), 4),
                reason=f"line {s.line}: {s.expression} uses {', '.join(map(_fmt, s.ungrounded))}, "
                "found neither in the question nor in earlier steps",
            )
        )
    else:
        out.append(CheckResult(name="numbers_grounded", passed=True, score=1.0))
    if a.final is not None and (a.steps or a.lines > 1) and not a.final_in_work:
        last = f" (last result {_fmt(a.steps[-1].claimed)})" if a.steps else ""
        out.append(
            CheckResult(
                name="answer_follows",
                passed=False,
                score=0.0,
                reason=f"final answer {_fmt(a.final)} does not follow from the steps{last}",
            )
        )
    else:
        out.append(CheckResult(name="answer_follows", passed=True, score=1.0))
    if a.expected is not None:
        right = a.final is not None and close_enough(a.expected, a.final)
        reason = "" if right else f"the question's expression is {_fmt(a.expected)}"
        if not right and a.final is not None:
            reason += f"; the answer states {_fmt(a.final)}"
        out.append(CheckResult(name="expected_value", passed=right, score=float(right), reason=reason))
    return out


def _ask(question: str) -> str:
    """The sentence that asks: the last one with a question mark, else the last one."""
    parts = [p for p in re.split(r"(?<=[.!?])\s+", question.strip()) if p]
    return next((p for p in reversed(parts) if "?" in p), parts[-1] if parts else "")


def _cued_operators(prose: str) -> set[str]:
    words = set(re.findall(r"[a-z]+", prose.lower()))
    return {op for op, cues in _CUES.items() if words & cues}


def _final_answer(text: str) -> tuple[str, float | None, bool]:
    """(the work before the final answer, the answer, whether a marker stated it)."""
    for pattern in _FINAL_MARKERS:
        matches = list(pattern.finditer(text))
        if matches:
            m = matches[-1]
            return text[: m.start()], tx.parse_number(m.group(1)), True
    # No marker: the last number of the last sentence, which may run over several lines
    # (`Polly could stand:\n\n1200 - 1000 = 200 feet\n\noutside the reach`). A last sentence with
    # no number (`Now add the two together.`) states no result. The sentence that states the
    # result is still work, so a step in it is checked like any other.
    last = re.split(r"(?<=[.!?])\s+", text.strip())[-1]
    numbers = tx.number_values(_ANNOTATION.sub(" ", last))
    return text, (numbers[-1] if numbers else None), False


class _Reader:
    """Reads a solution line by line, keeping what later lines may use: the numbers known so far
    (question, prose, results, every sub-result of a chain) and the variables defined."""

    def __init__(self, known: set[float], continuations: bool = True):
        self.pool = _Pool(known)
        self.variables: dict[str, float] = {}
        self.continuations = continuations

    def line(self, line_no: int, raw: str) -> list[Step]:
        inline = normalise_expression(_ANNOTATION.sub(" ", raw))
        # The tail of an equation in unknowns (`X - X*1/4 = 24`, `3S + 9 - 9 = 27 - 9`) is no arithmetic.
        chains = [m.group(0) for m in _CHAIN.finditer(inline) if not _SYMBOLIC_BEFORE.search(inline[: m.start()])]
        prose = _CHAIN.sub(" ", inline)
        prose_numbers = {abs(v) for v in tx.number_values(prose)}
        # Prose in the same line counts ("a week has 7 days, so 7 * 3 = 21"): it is stated, not
        # slipped into the arithmetic.
        self.pool.add(prose_numbers)
        written = {_canonical(p) for c in chains for p in c.split("=")}
        # An annotation repeats the inline equation it follows; alone (`she has <<16-3=13>>13
        # left`) it is the step.
        annotations = [a for a in _ANNOTATION.findall(raw) if _canonical(a.split("=")[0]) not in written]
        cued = _cued_operators(prose)
        steps = [s for s in (self._chain(line_no, c) for c in chains) if s is not None]
        computed = [s for s in (self._chain(line_no, a) for a in annotations) if s is not None]
        # Prose around an annotation may be loose (`2 x 1 hour = <<2*60=120>>120 minutes`): what
        # was computed is the annotation, and it decides.
        steps = [s for s in steps if s.correct or not any(_same_claim(s, c) and c.correct for c in computed)]
        for step in (steps := steps + computed):
            step.cue_conflict = bool(cued) and not (cued & set(re.sub(r"^\s*-", "", step.expression)))
        self.pool.add(_derived(prose_numbers) | tx.implied_numbers(prose))
        return steps

    def _chain(self, line_no: int, chain: str) -> Step | None:
        """`a op b = c`, or a chain `expr = expr = ... = value`. Each link must hold: a rewrite keeps
        the value (its new numbers are sub-results, not new facts), a continuation starts from the
        previous value (`2 * 3 = 6 * 4 = 24`). None when the chain holds no operation."""
        parts = [p.strip() for p in normalise_expression(chain).split("=")]
        if len(parts) < 2 or not all(parts) or any(p.count("(") != p.count(")") for p in parts):
            return None  # a fragment, such as the tail of `A+(A+2)+3 = 19`
        defines = None
        if (m := _LONE_VAR.match(parts[0])) is not None:
            defines, parts = m.group(1), parts[1:]
        step: Step | None = None
        previous: float | None = None
        before = ""  # the part that gave `previous`
        for part in parts:
            names = set(re.findall(_VAR, part))
            if names - set(self.variables):
                previous = None  # an equation in unknowns (`X - X/4 = 24`): nothing to check
                continue
            value = evaluate(_substitute(part, self.variables))
            operator_ = _has_operator(part)
            if step is None:
                if not operator_:
                    # A plain number before any operation is the tail of prose (`1/4 of 16 =
                    # 0.25 * 16 = 4`), not a claim; a defined variable is a value.
                    previous = value if names else None
                    continue
                operands = [] if names else _operands(part)
                step = Step(line_no, part, 0.0, value, operands, value is not None)
                step.ungrounded = sorted({o for o in operands if o not in self.pool})
                if value is None:
                    step.wrong_link = f"{part} cannot be evaluated"
                elif previous is not None and not close_enough(value, previous):
                    step.correct = False
                    step.wrong_link = f"{_fmt(previous)} = {part}, but it is {_fmt(value)}"
            elif step.correct:
                self._link(step, before, previous, part, value, operator_)
            self.pool.add(_subvalues(part, self.variables))
            if value is not None:
                previous, before = value, part
        if step is None or previous is None:
            return None
        step.claimed = previous
        if defines is not None:
            self.variables[defines] = previous
        self.pool.add({abs(previous)} | ({abs(step.computed)} if step.computed is not None else set()))
        return step

    def _link(
        self, step: Step, before: str, previous: float | None, part: str, value: float | None, operator_: bool
    ) -> None:
        if value is None:
            step.correct, step.wrong_link = False, f"{part} cannot be evaluated"
            return
        if previous is None or close_enough(value, previous) or close_enough(previous, value):
            return
        numbers = _operands(part)
        lead = _leading(part)
        if self.continuations and operator_ and lead is not None and tx.same_number(lead, previous, 1e-4):
            # A continuation (`2 * 3 = 6 * 4 = 24`) starts from the previous value, sign and all:
            # its other operands are new, and must be grounded.
            step.operands.extend(numbers[1:])
            step.ungrounded = sorted({*step.ungrounded, *(o for o in numbers[1:] if o not in self.pool)})
            return
        if not operator_ and part.endswith("%") and close_enough(previous, 100 * value):
            return  # `(4 / 20) * 100 = 20%`
        step.correct = False
        if operator_:
            step.wrong_link = f"{before} = {part}, but the left side is {_fmt(previous)} and the right {_fmt(value)}"
        else:
            step.wrong_link = f"{before} = {part}, but it is {_fmt(previous)}"


def _leading(part: str) -> float | None:
    """The signed number an expression starts with: -2 in `(-2 + 1)`."""
    m = re.match(rf"[(\s]*(-?)\s*({_NUM})", part)
    value = tx.parse_number(m.group(2)) if m else None
    return None if m is None or value is None else (-value if m.group(1) else value)


def _same_claim(a: Step, b: Step) -> bool:
    return tx.same_number(a.claimed, b.claimed, 1e-4)


def _join_thousands(text: str) -> str:
    return _SPACED_THOUSANDS.sub(lambda m: m.group(0).replace(" ", ""), text)


def _substitute(part: str, variables: dict[str, float]) -> str:
    return re.sub(_VAR, lambda m: f"({variables[m.group(0)]!r})", part) if variables else part


def _subvalues(part: str, variables: dict[str, float]) -> set[float]:
    """The value of every sub-expression: `(-9 * 9) + 8` yields 81 and 73 for the next rewrite."""
    src = re.sub(r"(\d+(?:\.\d+)?)%", r"(\1/100)", _substitute(part, variables)).replace("^", "**")
    try:
        tree = ast.parse(src.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError):
        return set()
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp):
            try:
                out.add(abs(_eval_node(node)))
            except (ValueError, ZeroDivisionError, OverflowError, TypeError, RecursionError):
                continue
    return out


def _plain(text: str) -> str:
    """Markdown emphasis, list markers and LaTeX arithmetic, as larger models write them, read as
    plain text."""
    text = re.sub(r"(?<!\d)\*\*|\*\*(?!\d)|__", "", text)
    text = _FRAC.sub(r"(\1)/(\2)", text)
    for latex, plain in _LATEX:
        text = text.replace(latex, plain)
    text = _join_thousands(_LIST_MARKER.sub("", text))
    return re.sub(r"\\text\{([^{}]*)\}", r"\1", text)


def normalise_expression(s: str) -> str:
    s = s.replace("−", "-").replace("–", "-").replace("÷", "/").replace("×", "*").replace("**", "^")
    s = _NOTE.sub("", s)
    s = _UNIT.sub(" ", s)
    s = _TIMES.sub(" * ", s)
    s = _PERCENT_OF.sub(" * ", s)
    s = _CURRENCY.sub("", s)
    s = _MIXED_FRACTION.sub(r"(\1+\2/\3)", s)
    s = _IMPLICIT_TIMES.sub("*", s)
    return _THOUSANDS.sub("", s)


def _canonical(s: str) -> str:
    return re.sub(r"\s+", "", normalise_expression(s))


def _has_operator(s: str) -> bool:
    return bool(re.search(r"(?<=[\d)%.])\s*[-+*/^]\s*[\d(.\-]", s))


def _operands(s: str) -> list[float]:
    return [abs(v) for v in (tx.parse_number(n) for n in re.findall(_NUM, s)) if v is not None]


def evaluate(expr: str) -> float | None:
    """Arithmetic only, through the AST: never eval(). '%' reads as /100, as people write it."""
    src = re.sub(r"(\d+(?:\.\d+)?)%", r"(\1/100)", expr).replace("^", "**")
    try:
        tree = ast.parse(src.strip(), mode="eval")
        value = _eval_node(tree.body)
    except (SyntaxError, ValueError, ZeroDivisionError, OverflowError, TypeError, RecursionError):
        return None
    return float(value) if value == value and abs(value) < 1e15 else None


def _eval_node(node: ast.AST) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _eval_node(node.operand)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left, right = _eval_node(node.left), _eval_node(node.right)
        if isinstance(node.op, ast.Pow) and (abs(right) > 64 or abs(left) > 1e6):
            raise ValueError("exponent too large")
        return _OPS[type(node.op)](left, right)
    raise ValueError("not arithmetic")


def close_enough(computed: float, claimed: float) -> bool:
    """Equal, or equal at the precision the solution wrote (10/3 = 3.33 is fine; 10/3 = 3 is not)."""
    if tx.same_number(computed, claimed, 1e-4):
        return True
    decimals = _decimals(claimed)
    return decimals > 0 and abs(computed - claimed) <= 0.5 * 10**-decimals + 1e-9


def _decimals(value: float) -> int:
    s = f"{value:.10f}".rstrip("0")
    return len(s.split(".")[1]) if "." in s else 0


def _derived(numbers: set[float]) -> set[float]:
    """Forms a question's numbers are routinely rewritten into: 20% -> 0.2, 0.8, 80; 4 -> 1/4."""
    out = set()
    for n in numbers:
        out.update({n / 100, 1 - n / 100, 100 - n, 100 + n, 1 + n / 100, n * 100})
        if n:
            out.add(1 / n)
    return out


def _member(value: float, pool: set[float]) -> bool:
    return value in _Pool(pool)


class _Pool:
    """Numbers compared to six significant digits, in constant time per lookup: a long
    solution must not cost quadratic time."""

    def __init__(self, values: set[float] | frozenset[float] = frozenset()):
        self._keys: set[str] = set()
        self.add(values)

    def add(self, values: set[float] | frozenset[float]) -> None:
        self._keys.update(_key(v) for v in values)

    def __contains__(self, value: float) -> bool:
        return _key(value) in self._keys


def _key(value: float) -> str:
    return f"{value:.6g}"


def _truncation(text: str, finish_reason: str | None, final: float | None, explicit: bool) -> str:
    if finish_reason == "length":
        return "output was truncated at the token limit"
    stripped = text.rstrip()
    if not stripped:
        return "empty output"
    if stripped.count("<<") > stripped.count(">>"):
        return "output stops inside a calculation"
    if re.search(r"[-+*/=x×(<]\s*$", stripped):
        return "output stops in the middle of an equation"
    if not stripped.endswith(_ENDINGS) and (final is None or not explicit):
        return "output stops mid-sentence"
    return ""


def _fmt(value: float) -> str:
    return f"{value:g}" if abs(value) < 1e12 else f"{value:.6g}"
