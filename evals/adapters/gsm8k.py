"""GSM8K: grade-school math word problems, graded by exact match of the final number.

The gold answer is the number after `####` in the reference solution, commas stripped. Model
answers are free-form, so the final number is read from, in order of precedence: `#### N`,
`\\boxed{N}`, `A: N` / `Answer: N`, `the answer is N`, else the last number in the text.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from evals.adapters.base import Adapter, Grade, Item, read_jsonl
from slmflow.core.records import Message

SYSTEM = (
    "Solve the math word problem. Reason step by step, then give the final answer alone "
    "on the last line, formatted as '#### <number>'."
)

_NUM = r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|-?\.\d+"
_MONEY = r"\$?\s*"
_MARKERS = [
    re.compile(rf"####\s*{_MONEY}({_NUM})"),
    re.compile(rf"\\boxed\{{\s*\\?{_MONEY}({_NUM})"),
    re.compile(rf"(?<!\w)(?:final answer|answer|a)\s*:\s*\**\s*{_MONEY}({_NUM})", re.I),
    re.compile(rf"answer\s+(?:is|=|would be|will be)\s*:?\s*\**\s*{_MONEY}({_NUM})", re.I),
]
_ANY_NUMBER = re.compile(rf"(?<![\w.])({_NUM})")
_ANNOTATION = re.compile(r"<<[^<>]*>>")


def to_number(text: str) -> Decimal | None:
    try:
        return Decimal(text.replace(",", "").replace("$", "").strip())
    except InvalidOperation:
        return None


def final_number(text: str) -> Decimal | None:
    """The answer a free-form solution commits to; the last match of the strongest marker wins,
    since models often restate intermediate results before the final one."""
    for marker in _MARKERS:
        found = marker.findall(text)
        if found:
            return to_number(found[-1])
    numbers = _ANY_NUMBER.findall(text)
    return to_number(numbers[-1]) if numbers else None


def gold_number(gold: Any) -> Decimal | None:
    text = str(gold)
    if "####" in text:
        return to_number(text.rsplit("####", 1)[1])
    return to_number(text)


class GSM8K(Adapter):
    name = "gsm8k"
    verify_kind = "math"
    task_kind = "answer"
    files = ("gsm8k/train.jsonl",)
    max_tokens = 512

    def _load(self, data_dir: Path) -> list[Item]:
        # The file has no ids; the line number is stable for a given commit of the dataset.
        return [
            Item(id=f"gsm8k-train-{i}", question=row["question"], gold=row["answer"])
            for i, row in enumerate(read_jsonl(data_dir / self.files[0]))
        ]

    def messages(self, item: Item) -> list[Message]:
        return [Message(role="system", content=SYSTEM), Message(role="user", content=item.question)]

    def parse(self, answer: str, item: Item) -> float | None:
        value = final_number(answer)
        return float(value) if value is not None else None

    def grade(self, answer: str, item: Item) -> Grade:
        got, want = final_number(answer), gold_number(item.gold)
        correct = got is not None and want is not None and got == want
        return Grade(correct=correct, score=float(correct), parsed=None if got is None else _plain(got))

    def demo_answers(self, item: Item, variant: int) -> tuple[str, str]:
        solution = _ANNOTATION.sub("", str(item.gold))
        want = gold_number(item.gold)
        if "####" not in solution or want is None:
            return f"#### {item.gold}", f"#### {item.gold}1"
        work, _ = solution.rsplit("####", 1)
        wrong_value = want + 1 if variant % 2 else want * 2 + 3
        return f"{work}#### {_plain(want)}", f"{work}#### {_plain(wrong_value)}"


def _plain(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text if "." not in text else text.rstrip("0").rstrip(".")
