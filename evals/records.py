"""The replay file: one JSON object per line with a small and a frontier answer to one item.

    {"id", "kind", "question", "gold"?, "small": {"model", "answer", "tokens_in", "tokens_out"},
     "frontier": {...}}

Optional fields carry what a verifier or grader needs when the item is not in the local copy of
the dataset (user logs on their own data): `prompt` (the request as the model saw it), `tools`,
`evidence`, `choices`. `synthetic: true` marks generated demo lines; reports built from them say
so on every page.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from evals.errors import EvalError
from slmflow.core.records import Draft

MAX_REPORTED_ERRORS = 5


class ModelOutput(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str
    answer: str
    tokens_in: int = Field(0, ge=0)
    tokens_out: int = Field(0, ge=0)
    finish_reason: str | None = None
    confidence: float | None = Field(None, ge=0, le=1)
    latency_s: float | None = None

    @classmethod
    def from_draft(cls, draft: Draft) -> ModelOutput:
        return cls(
            model=draft.model,
            answer=draft.text,
            tokens_in=draft.tokens_in,
            tokens_out=draft.tokens_out,
            finish_reason=draft.finish_reason,
            confidence=draft.confidence,
            latency_s=round(draft.latency_s, 3),
        )


class ReplayRecord(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    kind: str
    question: str
    gold: Any = None
    small: ModelOutput
    frontier: ModelOutput
    dataset: str | None = None
    prompt: str | None = None
    tools: list[dict[str, Any]] | None = None
    evidence: list[str] | None = None
    choices: list[str] | None = None
    synthetic: bool = False

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_text(cls, value: Any) -> Any:
        # Dataset ids are sometimes numeric (PubMedQA PMIDs); one spelling keeps cache keys stable.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    def to_line(self) -> str:
        return json.dumps(self.model_dump(mode="json", exclude_none=True), ensure_ascii=False)


def read_replay(path: Path) -> list[ReplayRecord]:
    """Every record of a replay file. Malformed lines are reported together, with line numbers,
    so a user fixes a file in one pass rather than one error per run."""
    if not path.is_file():
        raise EvalError(f"replay file not found: {path}")
    records: list[ReplayRecord] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = ReplayRecord.model_validate_json(line)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"]) or "(line)"
                problems.append(f"line {lineno}: {where}: {first['msg']}")
                continue
            if record.id in seen:
                problems.append(f"line {lineno}: id {record.id!r} already on line {seen[record.id]}")
                continue
            seen[record.id] = lineno
            records.append(record)
    if problems:
        more = len(problems) - MAX_REPORTED_ERRORS
        shown = problems[:MAX_REPORTED_ERRORS] + ([f"... and {more} more"] if more > 0 else [])
        raise EvalError(f"{path} has {len(problems)} malformed line(s):\n  " + "\n  ".join(shown))
    if not records:
        raise EvalError(f"{path} holds no records")
    return records


def recorded_ids(path: Path) -> set[str]:
    """Ids already in a replay file that is being written, tolerating a torn last line (the run
    that wrote it may have been killed mid-write)."""
    ids: set[str] = set()
    if not path.is_file():
        return ids
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            try:
                ids.add(ReplayRecord.model_validate_json(line).id)
            except ValidationError:
                continue
    return ids
