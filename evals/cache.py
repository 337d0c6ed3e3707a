"""The per-item result cache that makes evaluation resumable.

One JSON line per finished item, appended and flushed as soon as it is known, so an interrupted
run loses at most the line being written; a rerun skips every key already present. Keys cover
everything a result depends on (dataset, id, both answers, gold, prompt, verifier fingerprint,
grader version), so a changed input is re-evaluated rather than served stale.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from pydantic import ValidationError

from evals.results import ItemResult

# Bump when a grader changes what it counts as correct: cached grades then stop matching.
GRADER_VERSION = 2


def result_key(dataset: str, item_id: str, parts: list[Any]) -> str:
    payload = json.dumps([GRADER_VERSION, *parts], sort_keys=True, default=str)
    return f"{dataset}:{item_id}:{hashlib.sha256(payload.encode()).hexdigest()[:16]}"


class ResultCache:
    def __init__(self, path: Path, fresh: bool = False):
        self.path = path
        self._results: dict[str, ItemResult] = {}
        if fresh:
            path.unlink(missing_ok=True)
        elif path.is_file():
            self._load()
        self._fh: IO[str] | None = None

    def _load(self) -> None:
        with self.path.open(encoding="utf-8") as fh:
            for line in fh:
                try:
                    result = ItemResult.model_validate_json(line)
                except ValidationError:
                    continue  # a torn last line from an interrupted run; that item is redone
                self._results[result.key] = result

    def get(self, key: str) -> ItemResult | None:
        return self._results.get(key)

    def add(self, result: ItemResult) -> None:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _end_torn_line(self.path)
            self._fh = self.path.open("a", encoding="utf-8")
        self._fh.write(result.model_dump_json() + "\n")
        self._fh.flush()
        self._results[result.key] = result

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> ResultCache:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _end_torn_line(path: Path) -> None:
    """Appending after a line cut off mid-write would glue the new line onto it."""
    if path.is_file() and path.stat().st_size:
        with path.open("rb+") as fh:
            fh.seek(-1, 2)
            if fh.read(1) != b"\n":
                fh.write(b"\n")
