"""PubMedQA (PQA-L): answer a research question from its abstract with yes, no or maybe.
Graded by label accuracy; macro-F1 over the three labels is reported alongside, as in the paper.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from evals.adapters.base import Adapter, Grade, Item, read_json
from slmflow.core.records import Message

LABELS = ["yes", "no", "maybe"]
SYSTEM = "Answer the biomedical research question using the abstract. Reply with exactly one of: yes, no, maybe."
_LABEL = re.compile(r"\b(yes|no|maybe)\b", re.I)


def read_label(answer: str) -> str | None:
    """The label an answer commits to: the whole answer when it is a label, else the first label
    word, which is where free-form answers ('No, the data show ...') put their verdict."""
    text = answer.strip().strip(".*\"' ").lower()
    if text in LABELS:
        return text
    found = _LABEL.search(answer)
    return found.group(1).lower() if found else None


def macro_f1(pairs: list[tuple[Any, Any]], labels: list[str]) -> float:
    scores = []
    for label in labels:
        tp = sum(1 for g, p in pairs if g == label and p == label)
        fp = sum(1 for g, p in pairs if g != label and p == label)
        fn = sum(1 for g, p in pairs if g == label and p != label)
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / len(scores)


class PubMedQA(Adapter):
    name = "pubmedqa"
    verify_kind = "classify"
    task_kind = "classify"
    files = ("pubmedqa/pqal_dev.json",)
    max_tokens = 8

    def _load(self, data_dir: Path) -> list[Item]:
        rows: dict[str, Any] = read_json(data_dir / self.files[0])
        return [
            Item(
                id=pmid, question=row["QUESTION"], gold=row["final_decision"], extra={"evidence": list(row["CONTEXTS"])}
            )
            for pmid, row in rows.items()
        ]

    def choices(self, item: Item) -> list[str]:
        return item.extra.get("choices") or LABELS

    def messages(self, item: Item) -> list[Message]:
        abstract = "\n".join(item.extra.get("evidence", []))
        return [
            Message(role="system", content=SYSTEM),
            Message(role="user", content=f"Abstract:\n{abstract}\n\nQuestion: {item.question}"),
        ]

    def parse(self, answer: str, item: Item) -> str | None:
        return read_label(answer)

    def grade(self, answer: str, item: Item) -> Grade:
        label = read_label(answer)
        correct = label == str(item.gold).strip().lower()
        return Grade(correct=correct, score=float(correct), parsed=label)

    def extra_metrics(self, pairs: list[tuple[Any, Any]]) -> dict[str, float]:
        return {"macro_f1": round(macro_f1(pairs, LABELS), 4)}

    def demo_answers(self, item: Item, variant: int) -> tuple[str, str]:
        others = [label for label in LABELS if label != item.gold]
        return str(item.gold), others[variant % len(others)]
