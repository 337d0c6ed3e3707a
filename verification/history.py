"""Training labels from the flow's escalations (`<results_dir>/labels.jsonl`, see
`flows.results.escalation_labels`).

Each line records a small model's answer that the verifier rejected and the frontier's answer to
the same request. They label the small answer:

- the two agree: the small answer was right after all (label 1, a false rejection);
- they disagree and the verifier accepted the frontier's answer: the small answer was wrong
  (label 0);
- they disagree and the frontier's answer was rejected too: nothing is known, the line is skipped.

Lines with `"source": "review"` are a reviewer's decision on a unit the flow left for review
(`flows.decisions.decision_labels`): one `answer` (a draft, or the reviewer's correction) with the
reviewer's `correct` as its label.

Only kinds with a learned model (free-text answers) are used, and only when the line carries what
the features need: the numbered context passages in the recorded prompt. Nothing here raises on a
bad line: it is counted and reported by line number.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from slmflow.core.records import Evidence
from verification.features import LEARNED_KINDS
from verification.jsonl import VerifyInput
from verification.sources import Labelled

REQUIRED = ("kind", "question", "small_output", "frontier_accepted", "agree")
REVIEW_REQUIRED = ("kind", "question", "answer", "correct")
DEFAULT_WEIGHT = 5.0
_PASSAGE = re.compile(r"^\[(\d+)\]\s?(.*)$")


@dataclass
class HistoryReport:
    path: Path
    lines: int = 0
    used: Counter = field(default_factory=Counter)  # kind -> labels used
    labels: Counter = field(default_factory=Counter)  # (kind, label) -> count
    skipped: Counter = field(default_factory=Counter)  # reason -> count
    bad: list[str] = field(default_factory=list)  # "line N: why"

    def summary(self) -> list[str]:
        out = [f"history {self.path}: {self.lines} lines, {sum(self.used.values())} labels used"]
        for kind in sorted(self.used):
            out.append(f"  {kind}: {self.used[kind]} ({self.labels[kind, 1]} right, {self.labels[kind, 0]} wrong)")
        for reason, n in sorted(self.skipped.items(), key=lambda kv: (-kv[1], kv[0])):
            out.append(f"  skipped {n}: {reason}")
        if self.bad:
            shown = "; ".join(self.bad[:10]) + (f"; … {len(self.bad) - 10} more" if len(self.bad) > 10 else "")
            out.append(f"  unreadable {len(self.bad)}: {shown}")
        return out


def load_history(path: Path, weight: float = DEFAULT_WEIGHT) -> tuple[list[Labelled], HistoryReport]:
    """Examples (with `weight`) from a labels file, in file order, and what was used or skipped.
    A missing file is an OSError for the caller; everything inside the file is reported."""
    report = HistoryReport(path=path)
    raw = path.read_bytes()
    examples: list[Labelled] = []
    seen: dict[tuple[str, str, str], int] = {}  # content -> index in examples, or -1 once conflicting
    for number, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        report.lines += 1
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            report.bad.append(f"line {number}: not JSON ({getattr(exc, 'msg', 'not UTF-8')})")
            continue
        except RecursionError:
            report.bad.append(f"line {number}: nested too deeply")
            continue
        why = _invalid(row)
        if why:
            report.bad.append(f"line {number}: {why}")
            continue
        kind = row["kind"]
        if kind not in LEARNED_KINDS:
            report.skipped[f"kind {kind}: no learned model"] += 1
            continue
        output = row["answer"] if _reviewed(row) else row["small_output"]
        if _reviewed(row):
            label = int(row["correct"])
        elif row["agree"]:
            label = 1
        elif row["frontier_accepted"]:
            label = 0
        else:
            report.skipped["disagreement with a frontier answer the verifier also rejected"] += 1
            continue
        try:
            request, why = _request(row, output)
        except ValidationError as exc:  # a field of the wrong shape
            request, why = None, f"{kind}: {exc.errors()[0]['msg']}"
        if request is None:
            report.skipped[why] += 1
            continue
        key = (kind, row["question"], json.dumps(output, sort_keys=True, default=str))
        if key in seen:
            index = seen[key]
            if index >= 0 and examples[index].label != label:
                report.skipped["the same answer labelled both ways (both dropped)"] += 2
                report.used[kind] -= 1
                report.labels[kind, examples[index].label] -= 1
                examples[index] = None  # type: ignore[call-overload]
                seen[key] = -1
            else:
                report.skipped["duplicate of an earlier line"] += 1
            continue
        group = f"history:{row.get('job', '')}:{row.get('item_id', '')}:{row.get('task_id', '')}"
        if group == "history:::":
            group = f"history:{key}"
        seen[key] = len(examples)
        examples.append(Labelled(request, label, "history", group, weight=weight))
        report.used[kind] += 1
        report.labels[kind, label] += 1
    report.used = +report.used
    report.labels = +report.labels
    return [e for e in examples if e is not None], report


def _reviewed(row: dict[str, Any]) -> bool:
    return row.get("source") == "review"


def _invalid(row: Any) -> str:
    if not isinstance(row, dict):
        return f"expected a JSON object, got {type(row).__name__}"
    if _reviewed(row):
        missing = [k for k in REVIEW_REQUIRED if k not in row]
        if missing:
            return f"missing {', '.join(repr(k) for k in missing)}"
        if not isinstance(row["correct"], bool):
            return "'correct' is not true or false"
        return "" if isinstance(row["kind"], str) and isinstance(row["question"], str) else "bad 'kind' or 'question'"
    missing = [k for k in REQUIRED if k not in row]
    if missing:
        return f"missing {', '.join(repr(k) for k in missing)}"
    if not isinstance(row["kind"], str):
        return "'kind' is not a string"
    if not isinstance(row["question"], str):
        return "'question' is not a string"
    for k in ("frontier_accepted", "agree"):
        if not isinstance(row[k], bool):
            return f"{k!r} is not true or false"
    return ""


def _request(row: dict[str, Any], output: Any) -> tuple[VerifyInput | None, str]:
    """`output` as the flow verified it, as a verify line, or (None, why it cannot be rebuilt)."""
    kind, prompt = row["kind"], row["question"]
    if output is None:
        return None, f"{kind}: no output recorded"
    if not isinstance(output, str):
        return None, "answer: output is not text"
    evidence, question = split_context(prompt)
    if not evidence:
        return None, "answer: no numbered context passages in the recorded prompt"
    line_id = f"history:{row.get('job', '')}:{row.get('item_id', '')}:{row.get('task_id', '')}"
    return VerifyInput(
        id=line_id, kind="answer", question=question, answer=output, evidence=[e.text for e in evidence]
    ), ""


def split_context(prompt: str) -> tuple[list[Evidence], str]:
    """Passages and question from a prompt rendered by `flows.prompts.build_request`:
    'Context:\\n[1] ...\\n[2] ...\\n\\n<question>'. A passage may run over several lines."""
    if not prompt.startswith("Context:\n"):
        return [], prompt
    block, sep, question = prompt[len("Context:\n") :].partition("\n\n")
    passages: list[list[str]] = []
    for line in block.splitlines():
        m = _PASSAGE.match(line)
        if m and int(m.group(1)) == len(passages) + 1:
            passages.append([m.group(2)])
        elif passages:
            passages[-1].append(line)
        else:
            return [], prompt
    evidence = [
        Evidence(chunk_id=str(i), doc_id="history", text="\n".join(p).strip(), score=1.0, collection="history")
        for i, p in enumerate(passages, 1)
    ]
    return evidence, question.strip() if sep else ""
