"""Real model outputs with real labels, read from the development data (`../shared/data`) as
`slmflow verify` lines, so that benchmarks and training go through the same door as a user.

- `bbm/<task>`: BIG-Bench Mistake, PaLM 2 chain-of-thought traces, one step a line; correct when
  people judged no step wrong.
- `begin/<split>`: BEGIN dialogue responses, the knowledge snippet as evidence; correct when
  `Fully attributable` (`Generic` is left out).
- `gsm8k/<model>`: six real answers to 300 GSM8K test questions; the answer key.
- `pubmedqa/<half>`: the human-written conclusion of each abstract, the abstract as evidence;
  correct (the authors wrote it). `pubmedqa/<half>, another abstract`: the same conclusion with the
  next abstract of its half as evidence; wrong (it speaks of another study).

Nothing here is generated or perturbed: what a verifier is scored on is what models (or people)
wrote; only the other-abstract pairing is made here, from real text on both sides.
`training_set` is what the learned P(correct) is fitted on; every other source, and the other half
of PubMedQA, is held out from it.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from verification.jsonl import VerifyInput

BBM_TASKS = ("multistep_arithmetic", "word_sorting", "dyck_languages", "logical_deduction", "tracking_shuffled_objects")
BEGIN_SPLITS = ("dev_cmu", "dev_tc", "dev_wow", "test_wow")
# The cascade's frontier: its answers are what a rejected answer escalates to, never an alternative.
FRONTIER = "gpt-4-1106-preview"
SMALL = "mixtral-8x7b-instruct"
WEAKER = (
    "gpt-3-6b-finetuned",
    "gpt-3-6b-verifier-selected",
    "gpt-3-175b-finetuned",
    "gpt-3-175b-verifier-selected",
)


@dataclass
class Labelled:
    item: VerifyInput
    label: int  # 1: correct
    source: str
    group: str  # the question: items of one group never straddle a train/test split
    meta: dict[str, Any] = field(default_factory=dict)
    weight: float = 1.0  # sample weight in training


def training_set(data: Path) -> list[Labelled]:
    """The learned answer model's training data: BEGIN's CMU-DoG and Topical-Chat responses (human
    attribution labels) and the even half of PubMedQA's conclusions, with their own abstract
    (correct, written by the authors) and with another (wrong). Wizard of Wikipedia (BEGIN) and
    PubMedQA's odd half are never in it."""
    return [
        *begin(data, "dev_cmu"),
        *begin(data, "dev_tc"),
        *pubmedqa(data, half=0),
        *pubmedqa_other_abstract(data, half=0),
    ]


def bbm(data: Path, task: str) -> Iterator[Labelled]:
    """BIG-Bench Mistake traces. `meta['answer_right']` says whether the final answer matches the
    target: in multistep arithmetic 18 of the 62 traces people marked mistake-free end in a wrong
    answer (their steps hold a false equality), so figures are given against both."""
    kind = "math" if task == "multistep_arithmetic" else "reasoning"
    for i, line in enumerate((data / "big_bench_mistake" / f"{task}.jsonl").read_text().splitlines()):
        row = json.loads(line)
        item = VerifyInput(id=f"bbm-{task}-{i}", kind=kind, question=row["input"], answer="\n".join(row["steps"]))
        right = (row.get("answer") or "").strip() == (row.get("target") or "").strip()
        yield Labelled(
            item, int(row["mistake_index"] is None), f"bbm/{task}", item.id, {"answer_right": right, "task": task}
        )


def begin(data: Path, split: str) -> Iterator[Labelled]:
    with (data / "begin" / f"begin_{split}.tsv").open(newline="", encoding="utf-8") as f:
        for i, row in enumerate(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)):
            label = row["begin_label"].strip()
            if label == "Generic":
                continue
            item = VerifyInput(
                id=f"begin-{split}-{i}",
                kind="answer",
                question=row["message"],
                answer=row["response"],
                evidence=[row["knowledge"]],
            )
            yield Labelled(
                item, int(label == "Fully attributable"), f"begin/{split}", item.id, {"model": row["model_name"]}
            )


def gsm8k_answers(data: Path, models: tuple[str, ...] | None = None, alternatives: bool = False) -> Iterator[Labelled]:
    """Each model's answer, labelled by the answer key. With `alternatives`, an answer carries the
    answers of the weaker GPT-3 models (never the frontier's, nor its own) as alternatives."""
    for line in (data / "gsm8k_model_answers" / "dev.jsonl").read_text().splitlines():
        row = json.loads(line)
        by_model = {a["model"]: a for a in row["answers"]}
        for a in row["answers"]:
            if models is not None and a["model"] not in models:
                continue
            alts = [by_model[m]["answer"] for m in WEAKER if m in by_model and m != a["model"]] if alternatives else []
            item = VerifyInput(
                id=f"{row['id']}-{a['model']}",
                kind="math",
                question=row["question"],
                answer=a["answer"],
                alternatives=alts,
            )
            meta = {"model": a["model"], "frontier_correct": by_model[FRONTIER]["correct"]}
            yield Labelled(item, int(a["correct"]), f"gsm8k/{a['model']}", row["id"], meta)


def pubmedqa(data: Path, half: int | None = None) -> Iterator[Labelled]:
    """`half` 0 or 1: every other abstract (in file order), so training and report never share one."""
    for pmid, row in _pubmedqa_rows(data, half):
        item = _conclusion(f"pubmedqa-{pmid}", row, row)
        yield Labelled(item, 1, "pubmedqa" if half is None else f"pubmedqa/half{half}", item.id)


def pubmedqa_other_abstract(data: Path, half: int) -> Iterator[Labelled]:
    """Each conclusion of the half against the next abstract of the same half (the last against the
    first): an answer that speaks of another study than its evidence. Grouped with its own
    abstract's item, so a fold never holds one without the other."""
    rows = _pubmedqa_rows(data, half)
    for (pmid, row), (_, other) in zip(rows, rows[1:] + rows[:1]):
        item = _conclusion(f"pubmedqa-{pmid}-other", row, other)
        yield Labelled(item, 0, f"pubmedqa/half{half}, another abstract", f"pubmedqa-{pmid}")


def _conclusion(item_id: str, row: dict[str, Any], abstract: dict[str, Any]) -> VerifyInput:
    """The authors' conclusion of `row` as the answer to its question, with `abstract` as evidence."""
    return VerifyInput(
        id=item_id,
        kind="answer",
        question=row["QUESTION"],
        answer=row["LONG_ANSWER"],
        evidence=list(abstract["CONTEXTS"]),
    )


def _pubmedqa_rows(data: Path, half: int | None) -> list[tuple[str, dict[str, Any]]]:
    rows = json.loads((data / "pubmedqa" / "pqal_dev.json").read_text())
    return [(pmid, row) for i, (pmid, row) in enumerate(rows.items()) if half is None or i % 2 == half]
