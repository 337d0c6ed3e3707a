"""Chains of thought on self-contained puzzles, checked where a program can decide them.

The task is recognised from the question; its answer is recomputed exactly and every step the
trace writes in a checkable form is replayed:

- **Word sorting** (`Sort the following words ... List: w1 w2`, or a bare word list): the final
  answer must be the words in alphabetical order. Replayed: `"word": "k" (11)` (the letter at that
  position and its index in the alphabet), `We now have: (2) "a" < (5) ["b" ? "c"]` (each group's
  letter index, groups in ascending order), `Hence, we have "a" < "b"` (adjacent words in order).
- **Dyck languages** (a sequence of brackets): the final answer must close it, innermost first.
  Replayed: `) ; stack: ( [` (each symbol read in turn and the stack after it), `The final stack
  is "( ["`, the symbols popped and the closing symbols needed.

Logical deduction and tracking shuffled objects are left undecided: stating their constraints
and swaps in a form a program can solve needs a parser for each template of the puzzle, which no
model-free check here has, so such traces fail the `decidable` check and go to a stronger model.
Nothing here raises on odd text.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from slmflow.core.records import CheckResult, VerifyRequest

_ANSWER = re.compile(r"the answer is:?\s*(.*?)\s*\.?\s*$", re.I | re.S)
_OPEN = {"(": ")", "[": "]", "{": "}", "<": ">"}
_CLOSE = {v: k for k, v in _OPEN.items()}
_ORDINALS = {w: i for i, w in enumerate("first second third fourth fifth sixth seventh eighth ninth tenth".split(), 1)}
_LETTER_CLAIM = re.compile(r'"([^"]+)":\s*"([^"]*)"\s*\((\d+)\)')
_POSITION = re.compile(r"\b(" + "|".join(_ORDINALS) + r")\s+letter", re.I)
_GROUP = re.compile(r'\((\d+)\)\s*(\[[^\]]*\]|"[^"]+")')
_WORD_SORTING = re.compile(r"sort the following words.*?list:\s*(.*)$", re.I | re.S)
_DYCK_INPUT = re.compile(r"input:\s*(.*)$", re.I | re.S)


def checks(req: VerifyRequest) -> list[CheckResult]:
    text = req.text if isinstance(req.text, str) else ""
    question = req.question or req.source
    out = [_finished(req, text)]
    m = next(reversed(list(_ANSWER.finditer(text))), None)
    if m is None or not m.group(1).strip():
        out.append(CheckResult(name="result_stated", passed=False, score=0.0, reason="the answer is never stated"))
        return out
    out.append(CheckResult(name="result_stated", passed=True, score=1.0))
    final = m.group(1).strip()
    for recognise, decide in _TASKS:
        task_input = recognise(question)
        if task_input is not None:
            return out + decide(task_input, text, final)
    out.append(
        CheckResult(
            name="decidable",
            passed=False,
            score=0.0,
            reason="no model-free check decides this task (see docs/verifier.md)",
        )
    )
    return out


def _finished(req: VerifyRequest, text: str) -> CheckResult:
    if req.finish_reason == "length":
        return CheckResult(name="finished", passed=False, score=0.0, reason="output was truncated at the token limit")
    if not text.strip():
        return CheckResult(name="finished", passed=False, score=0.0, reason="empty output")
    return CheckResult(name="finished", passed=True, score=1.0)


# ---------------------------------------------------------- word sorting


def sorting_words(question: str) -> list[str] | None:
    m = _WORD_SORTING.search(question)
    body = m.group(1) if m else question
    words = body.split()
    if len(words) < 2 or not all(re.fullmatch(r"[a-z][a-z'&.\-]*", w) for w in words):
        return None
    return words


def _sorting(words: list[str], text: str, final: str) -> list[CheckResult]:
    expected = sorted(words)
    stated = final.split()
    if stated == expected:
        result = CheckResult(name="sorted_exactly", passed=True, score=1.0)
    else:
        where = next((i for i, (a, b) in enumerate(zip(stated, expected)) if a != b), min(len(stated), len(expected)))
        got = stated[where] if where < len(stated) else "(nothing)"
        result = CheckResult(
            name="sorted_exactly",
            passed=False,
            score=0.0,
            reason=f"word {where + 1} should be {expected[where] if where < len(expected) else '(nothing)'!r}, "
            f"the answer has {got!r}",
        )
    return [result, _steps(_sorting_steps(words, text))]


def _sorting_steps(words: list[str], text: str) -> str:
    """The first step that a replay contradicts, or ""."""
    position = 1
    for n, line in enumerate(text.splitlines(), 1):
        m = _POSITION.search(line)
        if m:
            position = _ORDINALS[m.group(1).lower()]
        for word, letter, index in _LETTER_CLAIM.findall(line):
            truth = word[position - 1] if len(word) >= position else ""
            if letter != truth:
                return f"line {n}: letter {position} of {word!r} is {truth or '(none)'!r}, not {letter!r}"
            if letter and int(index) != ord(letter.lower()) - 96:
                return f"line {n}: {letter!r} is letter {ord(letter.lower()) - 96} of the alphabet, not {index}"
        if "we now have" in line.lower():
            why = _groups(line.split("Hence")[0], position)
            if why:
                return f"line {n}: {why}"
        if "hence" in line.lower():
            chain = re.findall(r'"([^"]+)"\s*<\s*(?="([^"]+)")', line.split("Hence", 1)[-1])
            wrong = next(((a, b) for a, b in chain if a > b), None)
            if wrong:
                return f"line {n}: {wrong[0]!r} < {wrong[1]!r} is not alphabetical"
    return ""


def _groups(line: str, position: int) -> str:
    previous = 0
    for index, group in _GROUP.findall(line):
        k = int(index)
        if k < previous:
            return f"group ({k}) comes after ({previous})"
        previous = k
        for word in re.findall(r'"([^"]+)"', group):
            letter = word[position - 1] if len(word) >= position else ""
            if not letter or ord(letter.lower()) - 96 != k:
                return f"{word!r} is in group ({k}), but its letter {position} is {letter or '(none)'!r}"
    return ""


# --------------------------------------------------------- Dyck languages


def dyck_input(question: str) -> list[str] | None:
    m = _DYCK_INPUT.search(question)
    symbols = (m.group(1) if m else question).split()
    if not symbols or not all(s in _OPEN or s in _CLOSE for s in symbols):
        return None
    return symbols


def _dyck(symbols: list[str], text: str, final: str) -> list[CheckResult]:
    stack: list[str] = []
    for s in symbols:
        if s in _OPEN:
            stack.append(s)
        elif stack and stack[-1] == _CLOSE[s]:
            stack.pop()
        else:
            return [CheckResult(name="brackets_closed", passed=False, score=0.0, reason="the input is not balanced")]
    expected = [_OPEN[s] for s in reversed(stack)]
    stated = [c for c in final if c in _CLOSE]
    if stated == expected:
        result = CheckResult(name="brackets_closed", passed=True, score=1.0)
    else:
        result = CheckResult(
            name="brackets_closed",
            passed=False,
            score=0.0,
            reason=f"the sequence closes with {' '.join(expected) or '(nothing)'!r}, "
            f"the answer has {' '.join(stated) or '(nothing)'!r}",
        )
    return [result, _steps(_dyck_steps(symbols, text))]


def _dyck_steps(symbols: list[str], text: str) -> str:
    stack: list[str] = []
    read = 0
    for n, line in enumerate(text.splitlines(), 1):
        m = re.match(r"^\s*(\S)\s*;\s*stack:\s*(.*?)\s*\.?\s*$", line)
        if m:
            symbol, claimed = m.group(1), _stack(m.group(2))
            if read >= len(symbols) or symbols[read] != symbol:
                expected = symbols[read] if read < len(symbols) else "(the end)"
                return f"line {n}: reads {symbol!r}, but symbol {read + 1} is {expected!r}"
            read += 1
            if symbol in _OPEN:
                stack.append(symbol)
            elif stack and stack[-1] == _CLOSE[symbol]:
                stack.pop()
            if claimed != stack:
                return f"line {n}: the stack is {' '.join(stack) or 'empty'!r}, not {' '.join(claimed) or 'empty'!r}"
        f = re.search(r'final stack is\s*"([^"]*)"', line, re.I)
        if f and _stack(f.group(1)) != stack:
            return f"line {n}: the final stack is {' '.join(stack) or 'empty'!r}"
        pops = re.search(r"pop out (.*?) one by one", line, re.I)
        if pops and re.findall(r'"(\S)"', pops.group(1)) != stack[::-1]:
            return f"line {n}: popping {' '.join(stack) or 'empty'!r} gives {' '.join(stack[::-1])!r}"
        need = re.search(r"we need (.*?)(?:\.|$)", line, re.I)
        if (
            need
            and read == len(symbols)
            and [c for c in need.group(1) if c in _CLOSE] != [_OPEN[s] for s in stack[::-1]]
        ):
            return f"line {n}: the closing symbols are {' '.join(_OPEN[s] for s in stack[::-1])!r}"
    return ""


def _stack(s: str) -> list[str]:
    return [c for c in s.split() if c in _OPEN]


def _steps(problem: str) -> CheckResult:
    if problem:
        return CheckResult(name="steps", passed=False, score=0.0, reason=problem)
    return CheckResult(name="steps", passed=True, score=1.0)


_TASKS: list[tuple[Callable[[str], list[str] | None], Callable[[list[str], str, str], list[CheckResult]]]] = [
    (dyck_input, _dyck),
    (sorting_words, _sorting),
]
