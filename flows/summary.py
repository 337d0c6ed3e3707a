"""What a run came to: outcomes and costs per task, added up as results arrive.

A run's results stream to disk and are not kept (flows.results); these totals are what remains in
memory, whatever the job's size, and what shards and batches hand back to be merged.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, Field, computed_field

from slmflow.core.records import Status, TaskResult


def _no_counts() -> dict[str, int]:
    return {s.value: 0 for s in Status}


class TaskTotals(BaseModel):
    """One task's units: how many ended in each status, and what they cost."""

    counts: dict[str, int] = Field(default_factory=_no_counts)
    usd: float = 0.0
    counterfactual_usd: float = 0.0
    # Reviewed units whose verifier rejection the reviewer overturned (approved a draft).
    overturned: int = 0

    def add(self, r: TaskResult) -> None:
        self.counts[r.status.value] += 1
        self.usd += r.cost.usd
        self.counterfactual_usd += r.cost.counterfactual_usd
        self.overturned += bool(r.review and r.review.overturned)

    def merge(self, other: TaskTotals) -> None:
        for status, n in other.counts.items():
            self.counts[status] = self.counts.get(status, 0) + n
        self.usd += other.usd
        self.counterfactual_usd += other.counterfactual_usd
        self.overturned += other.overturned


class RunSummary(BaseModel):
    job: str
    run_id: str
    per_task: dict[str, TaskTotals] = {}  # in DAG order
    wall_s: float = 0.0
    results_path: str | None = None

    def add(self, r: TaskResult) -> None:
        self.per_task.setdefault(r.task_id, TaskTotals()).add(r)

    def merge(self, other: RunSummary) -> None:
        for task_id, totals in other.per_task.items():
            self.per_task.setdefault(task_id, TaskTotals()).merge(totals)

    @computed_field  # type: ignore[prop-decorator]  # in model_dump, for the run's return value
    @property
    def counts(self) -> dict[str, int]:
        out = _no_counts()
        for totals in self.per_task.values():
            for status, n in totals.counts.items():
                out[status] = out.get(status, 0) + n
        return out

    @computed_field  # type: ignore[prop-decorator]  # in model_dump, for the run's return value
    @property
    def tasks(self) -> int:
        return sum(self.counts.values())

    @computed_field  # type: ignore[prop-decorator]  # in model_dump, for the run's return value
    @property
    def usd(self) -> float:
        return sum(t.usd for t in self.per_task.values())

    @computed_field  # type: ignore[prop-decorator]  # in model_dump, for the run's return value
    @property
    def counterfactual_usd(self) -> float:
        return sum(t.counterfactual_usd for t in self.per_task.values())

    @property
    def overturned(self) -> int:
        return sum(t.overturned for t in self.per_task.values())

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
    def of(cls, job: str, run_id: str, results: Iterable[TaskResult], wall_s: float) -> RunSummary:
        summary = cls(job=job, run_id=run_id, wall_s=wall_s)
        for r in results:
            summary.add(r)
        return summary
