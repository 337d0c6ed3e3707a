"""Per-item results: what the verifier said about the small answer, and how both answers grade."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from evals.adapters.base import Grade

VerifierState = Literal["ok", "unsupported", "error"]


class Judged(BaseModel):
    correct: bool
    score: float
    parsed: Any = None

    @classmethod
    def of(cls, grade: Grade) -> Judged:
        return cls(correct=grade.correct, score=grade.score, parsed=grade.parsed)


class ItemResult(BaseModel):
    """One line of the result cache. Costs are not stored: they are recomputed from the replay
    line's token counts on every run, so a price change never needs a fresh evaluation."""

    key: str
    dataset: str
    id: str
    verifier: VerifierState
    accept: bool | None = None  # None when the verifier could not judge this kind
    score: float | None = None
    reasons: list[str] = []
    small: Judged
    frontier: Judged
    gold: Any = None
