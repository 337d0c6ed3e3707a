"""HotpotQA (distractor setting): multi-hop questions over ten paragraphs, two of them gold.
Graded with the official answer normalisation: exact match, and token F1 as graded credit.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from pathlib import Path
from typing import Any

from evals.adapters.base import Adapter, Grade, Item, read_json
from slmflow.core.records import Evidence, Message

SYSTEM = (
    "Answer the question using only the numbered context passages. Reply with the answer "
    "alone: the shortest span that answers it (a name, date, number, or yes/no), not a "
    "sentence."
)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_CITATION = re.compile(r"\s*\[\d+(?:\s*,\s*\d+)*\]")
_ANSWER_PREFIX = re.compile(r"(?:final answer|answer)\s*:\s*", re.I)


def normalize_answer(text: str) -> str:
    """The official normalisation: lowercase, drop punctuation and articles, squash spaces."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, gold: str) -> bool:
    return normalize_answer(prediction) == normalize_answer(gold)


def token_f1(prediction: str, gold: str) -> float:
    pred, ref = normalize_answer(prediction), normalize_answer(gold)
    # As in the official script: yes/no/noanswer earn no partial credit.
    if (pred in ("yes", "no", "noanswer") or ref in ("yes", "no", "noanswer")) and pred != ref:
        return 0.0
    common = Counter(pred.split()) & Counter(ref.split())
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred.split()), same / len(ref.split())
    return 2 * precision * recall / (precision + recall)


def answer_span(answer: str) -> str:
    """The span a free-form answer gives: after the last 'Answer:', its first line, without
    citation markers or trailing punctuation."""
    parts = _ANSWER_PREFIX.split(answer)
    lines = [line for line in parts[-1].strip().splitlines() if line.strip()]
    span = _CITATION.sub("", lines[0] if lines else "")
    return span.strip().strip("*\"'").rstrip(".").strip()


class HotpotQA(Adapter):
    name = "hotpotqa"
    verify_kind = "answer"
    task_kind = "answer"
    files = ("hotpotqa_sample/hotpot_dev_distractor_first53.json",)
    max_tokens = 64
    score_name = "token F1"
    required_extra = ("evidence",)

    def _load(self, data_dir: Path) -> list[Item]:
        rows: list[dict[str, Any]] = read_json(data_dir / self.files[0])
        return [
            Item(
                id=row["_id"],
                question=row["question"],
                gold=row["answer"],
                extra={"evidence": [f"{title}: {''.join(sentences).strip()}" for title, sentences in row["context"]]},
            )
            for row in rows
        ]

    def messages(self, item: Item) -> list[Message]:
        context = "\n".join(f"[{i}] {p}" for i, p in enumerate(item.extra["evidence"], 1))
        return [
            Message(role="system", content=SYSTEM),
            Message(role="user", content=f"Context:\n{context}\n\nQuestion: {item.question}"),
        ]

    def parse(self, answer: str, item: Item) -> str:
        return answer_span(answer)

    def grade(self, answer: str, item: Item) -> Grade:
        span, gold = answer_span(answer), str(item.gold)
        return Grade(correct=exact_match(span, gold), score=round(token_f1(span, gold), 4), parsed=span)

    def verify_extras(self, item: Item) -> dict[str, Any]:
        return {
            "evidence": [
                Evidence(
                    chunk_id=f"{item.id}:{i}",
                    doc_id=passage.split(":", 1)[0],
                    text=passage,
                    score=1.0,
                    collection="hotpotqa",
                )
                for i, passage in enumerate(item.extra["evidence"], 1)
            ]
        }

    def demo_answers(self, item: Item, variant: int) -> tuple[str, str]:
        gold = str(item.gold)
        if normalize_answer(gold) in ("yes", "no"):
            return gold, "no" if normalize_answer(gold) == "yes" else "yes"
        # A wrong span that still comes from the context, as a distractor answer would.
        titles = [p.split(":", 1)[0] for p in item.extra["evidence"]]
        wrong = next((t for t in titles[variant % len(titles) :] + titles if not exact_match(t, gold)), gold + " Jr.")
        return gold, wrong
