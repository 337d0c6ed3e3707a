"""The cost ledger: what each task cost, and what the same work would cost on the frontier alone."""

from __future__ import annotations

from collections import Counter

from pydantic import BaseModel

from slmflow.core.records import Attempt, CostEntry, Draft, Status, TaskResult
from slmflow.core.settings import Settings


class Ledger:
    def __init__(self, settings: Settings, frontier_model: str):
        self.settings = settings
        self.frontier_model = frontier_model

    def draft_usd(self, draft: Draft) -> float:
        return self.settings.price_for(draft.model).usd(draft.tokens_in, draft.tokens_out)

    def frontier_estimate(self, tokens_in: int, max_tokens: int) -> float:
        """Upper-bound cost of one frontier call, reserved against the budget beforehand."""
        return self.settings.price_for(self.frontier_model).usd(tokens_in, max_tokens)

    def entry(self, attempts: list[Attempt]) -> CostEntry:
        """Actual cost of every attempt; counterfactual = the prompt sent to the frontier once.
        When the frontier did answer, its own token counts are used; otherwise the small model's
        counts are the estimate."""
        usd = sum(self.draft_usd(a.draft) for a in attempts)
        basis = next((a.draft for a in attempts if a.role == "frontier"), None) or (
            attempts[0].draft if attempts else None
        )
        counterfactual = (
            self.settings.price_for(self.frontier_model).usd(basis.tokens_in, basis.tokens_out) if basis else 0.0
        )
        return CostEntry(
            tokens_in=sum(a.draft.tokens_in for a in attempts),
            tokens_out=sum(a.draft.tokens_out for a in attempts),
            usd=usd,
            counterfactual_usd=counterfactual,
        )


class RunSummary(BaseModel):
    job: str
    run_id: str
    tasks: int
    counts: dict[str, int]
    usd: float
    counterfactual_usd: float
    wall_s: float
    results_path: str | None = None

    @property
    def savings_usd(self) -> float:
        return self.counterfactual_usd - self.usd

    @property
    def savings_x(self) -> float | None:
        return self.counterfactual_usd / self.usd if self.usd > 0 else None

    def pct(self, status: str) -> float:
        return 100.0 * self.counts.get(status, 0) / self.tasks if self.tasks else 0.0

    @property
    def tasks_per_s(self) -> float:
        return self.tasks / self.wall_s if self.wall_s > 0 else 0.0

    @classmethod
    def of(cls, job: str, run_id: str, results: list[TaskResult], wall_s: float) -> RunSummary:
        counts = Counter(r.status.value for r in results)
        return cls(
            job=job,
            run_id=run_id,
            tasks=len(results),
            counts={s.value: counts.get(s.value, 0) for s in Status},
            usd=sum(r.cost.usd for r in results),
            counterfactual_usd=sum(r.cost.counterfactual_usd for r in results),
            wall_s=wall_s,
        )
