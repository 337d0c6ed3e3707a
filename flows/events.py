"""The Prefect events a job emits, for automations (deployments/automations/alerts.yaml) and the event
feed: one per unit left for review, one when the run's budget first refuses an escalation, one with
the run's summary, one per review decision.

Each names the job run as its first related flow run, so an automation's `{{ flow_run }}` is the job
run, whatever run emitted the event. `slmflow.review.rank` numbers a run's review units from 1: an
automation matching rank N+1 fires exactly once for a run that left more than N.
"""

from __future__ import annotations

from typing import Any

from prefect.events import emit_event

from flows.summary import RunSummary
from slmflow.core.records import TaskResult

NEEDS_REVIEW = "slmflow.unit.needs-review"
BUDGET_EXHAUSTED = "slmflow.budget.exhausted"
RUN_SUMMARY = "slmflow.run.summary"
REVIEW_DECIDED = "slmflow.review.decided"


def _job_run(run_id: str) -> dict[str, str]:
    return {"prefect.resource.id": f"prefect.flow-run.{run_id}", "prefect.resource.role": "flow-run"}


def needs_review(result: TaskResult, rank: int, review_run_id: str | None) -> None:
    related = [_job_run(result.run_id)]
    if review_run_id:
        related.append({"prefect.resource.id": f"prefect.flow-run.{review_run_id}", "prefect.resource.role": "review"})
    emit_event(
        event=NEEDS_REVIEW,
        resource={
            "prefect.resource.id": f"slmflow.unit.{result.run_id}.{result.task_id}.{result.item_id}",
            "prefect.resource.name": f"{result.task_id}[{result.item_id}]",
            "slmflow.job": result.job,
            "slmflow.review.rank": str(rank),
        },
        related=related,
        payload={
            "job": result.job,
            "task": result.task_id,
            "item": result.item_id,
            "reasons": result.reasons[:10],
            "error": result.error,
            "review": review_run_id,
        },
    )


def budget_exhausted(job: str, run_id: str, reason: str, budget: dict[str, Any]) -> None:
    emit_event(
        event=BUDGET_EXHAUSTED,
        resource={"prefect.resource.id": f"slmflow.run.{run_id}", "prefect.resource.name": job, "slmflow.job": job},
        related=[_job_run(run_id)],
        payload={"job": job, "reason": reason, "budget": budget},
    )


def run_summary(summary: RunSummary, state: str) -> None:
    emit_event(
        event=RUN_SUMMARY,
        resource={
            "prefect.resource.id": f"slmflow.run.{summary.run_id}",
            "prefect.resource.name": summary.job,
            "slmflow.job": summary.job,
            "slmflow.run.state": state,
        },
        related=[_job_run(summary.run_id)],
        payload={**summary.model_dump(mode="json"), "state": state},
    )


def review_decided(before: TaskResult, after: TaskResult, unblocked: list[TaskResult]) -> None:
    review = after.review
    assert review is not None
    emit_event(
        event=REVIEW_DECIDED,
        resource={
            "prefect.resource.id": f"slmflow.unit.{before.run_id}.{before.task_id}.{before.item_id}",
            "prefect.resource.name": f"{before.task_id}[{before.item_id}]",
            "slmflow.job": before.job,
            "slmflow.review.action": review.action,
        },
        related=[
            _job_run(before.run_id),
            {"prefect.resource.id": f"prefect.flow-run.{review.id}", "prefect.resource.role": "review"},
        ],
        payload={
            "job": before.job,
            "task": before.task_id,
            "item": before.item_id,
            "action": review.action,
            "reviewer": review.reviewer,
            "reason": review.reason,
            "status": after.status.value,
            "unblocked": {f"{r.task_id}[{r.item_id}]": r.status.value for r in unblocked},
        },
    )
