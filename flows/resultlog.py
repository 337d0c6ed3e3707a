"""A run's results file as an append-only log, and the journal of review decisions.

A review never rewrites what a run wrote: the decided unit, and every unit the decision unblocked,
get a new record appended to the run's results file, and the last record of a unit is its result
(`read_results`). The decisions journal (`<results_dir>/decisions.jsonl`) keeps one line per
decision across all runs. Writers hold the results file's lock (`locked`), so two decisions on one
run, applied at once by two review processes, see each other's records.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from slmflow.core.records import TaskResult
from slmflow.core.settings import Settings


def read_results(path: Path, keep: Callable[[TaskResult], bool] = lambda r: True) -> list[TaskResult]:
    """Each unit's last record, in the order units first appear; only the units whose last record
    `keep` accepts are held, so picking the few that await review out of a million costs those few."""
    latest: dict[str, TaskResult] = {}
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                record = TaskResult.model_validate_json(line)
                if keep(record):
                    latest[record.key] = record
                else:
                    latest.pop(record.key, None)
    return list(latest.values())


def append_results(path: Path, results: Iterable[TaskResult]) -> None:
    """Append records in one write (hold `locked(path)` around a read-decide-append)."""
    text = "".join(r.model_dump_json() + "\n" for r in results)
    if text:
        with path.open("a", encoding="utf-8") as f:
            f.write(text)


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock on a results file, across processes (a lock file beside it)."""
    with open(path.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def decisions_path(settings: Settings) -> Path:
    return Path(settings.results_dir) / "decisions.jsonl"


def labels_path(settings: Settings) -> Path:
    """Verifier labels: the flow's escalations and the reviewers' decisions (verification.history)."""
    return Path(settings.results_dir) / "labels.jsonl"


def append_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    text = "".join(json.dumps(row, default=str) + "\n" for row in rows)
    if text:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as f:
            f.write(text)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
