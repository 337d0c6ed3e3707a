"""The run's results on disk, written as units settle rather than at the end: one JSON line per unit
(`TaskResult`) in the run's results file, and one verifier label per escalation in `labels.jsonl`.

The results file is `<name>.partial` while the run writes it and takes its name when the run closes
it, so a file under its final name is complete; a crashed run leaves its partial file to inspect.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from slmflow.core.records import TaskResult


class ResultsWriter:
    """Appends results from any thread; `close()` publishes the file under its final name."""

    def __init__(self, path: Path, labels: Path):
        self.path = path
        self.labels = labels
        path.parent.mkdir(parents=True, exist_ok=True)
        self._partial = path.with_name(path.name + ".partial")
        self._out = self._partial.open("w", encoding="utf-8")
        self._lock = threading.Lock()
        self.written = 0

    def write(self, results: Iterable[TaskResult]) -> None:
        results = list(results)
        lines = "".join(r.model_dump_json() + "\n" for r in results)
        with self._lock:
            self._out.write(lines)
            self.written += len(results)
        append_labels(results, self.labels)

    def close(self) -> Path:
        with self._lock:
            if not self._out.closed:
                self._out.close()
                self._partial.replace(self.path)
        return self.path

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if kind is None:
            self.close()
        else:
            self._out.close()  # keep the partial file: what was written before the failure


def escalation_labels(results: Iterable[TaskResult]) -> list[dict]:
    """One verifier training label per escalation: the small and frontier answers and whether
    they agree. `slmflow verifier train --from-history` learns from these."""
    rows = []
    for r in results:
        small = next((a for a in r.attempts if a.role == "small"), None)
        big = next((a for a in reversed(r.attempts) if a.role == "frontier"), None)
        if small is None or big is None:
            continue
        rows.append(
            {
                "job": r.job,
                "run_id": r.run_id,
                "item_id": r.item_id,
                "task_id": r.task_id,
                "kind": r.kind,
                "question": r.prompt,
                "small_output": small.draft.output,
                "small_score": small.verdict.score,
                "frontier_output": big.draft.output,
                "frontier_accepted": big.verdict.accept,
                "agree": small.draft.output == big.draft.output,
            }
        )
    return rows


def append_labels(results: Iterable[TaskResult], path: Path) -> int:
    """Append one line per escalation to the labels file (several runs may append at once: one
    write per batch of lines, in append mode)."""
    rows = escalation_labels(results)
    if rows:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as f:
            f.write("".join(json.dumps(row, default=str) + "\n" for row in rows))
    return len(rows)
