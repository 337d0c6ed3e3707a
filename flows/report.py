"""What a run shows: Prefect artifacts (per-task table, summary, the ledger row history reads) and a
summary on the console. The results themselves stream to disk (flows.results)."""

from __future__ import annotations

import json

from prefect.artifacts import create_markdown_artifact, create_table_artifact
from rich import box
from rich.console import Console
from rich.table import Table

from flows.summary import RunSummary, TaskTotals
from slmflow.core.records import Status, TaskResult

LEDGER = "ledger"
# The outcomes of a run, as its summary table shows them (reviews add approved and rejected later).
_STYLE = {
    Status.accepted: "green",
    Status.escalated: "yellow",
    Status.needs_review: "red",
    Status.failed: "red",
    Status.blocked: "magenta",
}


def table_rows(results: list[TaskResult]) -> list[dict]:
    return [
        {
            "item": r.item_id,
            "task": r.task_id,
            "status": r.status.value,
            "model": r.model or "",
            "escalated": any(a.role == "frontier" for a in r.attempts),
            "score": round(r.score, 3) if r.score is not None else None,
            "tokens_in": r.cost.tokens_in,
            "tokens_out": r.cost.tokens_out,
            "latency_s": round(r.latency_s, 2),
            "cost_usd": round(r.cost.usd, 8),
            "counterfactual_usd": round(r.cost.counterfactual_usd, 8),
            "reasons": "; ".join(r.reasons)[:300] or (r.error or ""),
        }
        for r in results
    ]


def summary_markdown(s: RunSummary, frontier_label: str) -> str:
    x = f"{s.savings_x:.1f}x" if s.savings_x else "n/a"
    lines = [
        f"# {s.job}: run {s.run_id}",
        "",
        "| tasks | accepted | escalated | needs review | failed | blocked | tasks/s |",
        "|---|---|---|---|---|---|---|",
        f"| {s.tasks} | {s.counts['accepted']} | {s.counts['escalated']} | "
        f"{s.counts['needs_review']} | {s.counts['failed']} | {s.counts['blocked']} | "
        f"{s.tasks_per_s:.2f} |",
        "",
        "| cost | all-frontier counterfactual | savings |",
        "|---|---|---|",
        f"| ${s.usd:.6f} | ${s.counterfactual_usd:.6f} | ${s.savings_usd:.6f} ({x}) |",
        "",
        f"Frontier: **{frontier_label}**.",
    ]
    if s.results_path:
        lines.append(f"Results: `{s.results_path}`")
    return "\n".join(lines)


def artifact_key(job: str, what: str) -> str:
    # Prefect artifact keys allow only lowercase letters, digits and dashes.
    return f"{job.lower().replace('_', '-').replace('.', '-')}-{what}"


def ledger_row(s: RunSummary) -> dict:
    """The run's totals as one table row; `per_task` (JSON) carries the breakdown history plots."""
    return {
        "job": s.job,
        "run_id": s.run_id,
        "tasks": s.tasks,
        **s.counts,
        "cost_usd": s.usd,
        "counterfactual_usd": s.counterfactual_usd,
        "wall_s": s.wall_s,
        "per_task": json.dumps({t: v.model_dump() for t, v in s.per_task.items()}),
    }


def from_ledger_row(row: dict) -> RunSummary:
    """A summary from a ledger row; rows written before per-task totals read as one task, "*"."""
    if "per_task" in row:
        per_task = {t: TaskTotals.model_validate(v) for t, v in json.loads(row["per_task"]).items()}
    else:
        per_task = {
            "*": TaskTotals(
                counts={s.value: row.get(s.value, 0) for s in Status},
                usd=row["cost_usd"],
                counterfactual_usd=row["counterfactual_usd"],
            )
        }
    return RunSummary(job=row["job"], run_id=row["run_id"], per_task=per_task, wall_s=row.get("wall_s", 0.0))


def publish_artifacts(summary: RunSummary, frontier_label: str, results: list[TaskResult]) -> None:
    """The run's artifacts: the markdown summary and a one-row ledger that `slmflow history` reads
    back (small, so history stays fast at any run size); for a job run unit by unit, also the table
    of every unit (a batched run has one per batch instead, flows.batch)."""
    if results:
        create_table_artifact(
            key=artifact_key(summary.job, "results"),
            table=table_rows(results),
            description=f"Per-task verdicts and costs, run {summary.run_id}",
        )
    create_markdown_artifact(
        key=artifact_key(summary.job, "summary"),
        markdown=summary_markdown(summary, frontier_label),
        description="Run summary: outcomes and cost against all-frontier",
    )
    create_table_artifact(
        key=artifact_key(summary.job, LEDGER),
        table=[ledger_row(summary)],
        description="Run totals: outcomes, cost, all-frontier counterfactual",
    )


def print_summary(summary: RunSummary, frontier_label: str, console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title=f"{summary.job} — per task", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    # "frontier $" is the all-frontier counterfactual; short headers keep it in 80 columns.
    for col in ("task", "accepted", "escalated", "review", "failed", "blocked", "cost $", "frontier $"):
        table.add_column(col, justify="right" if col != "task" else "left", no_wrap=True)
    for task_id, totals in summary.per_task.items():
        table.add_row(
            task_id,
            *(f"[{_STYLE[s]}]{totals.counts.get(s.value, 0)}[/]" for s in _STYLE),
            f"{totals.usd:.4f}",
            f"{totals.counterfactual_usd:.4f}",
        )
    console.print(table)
    x = f"{summary.savings_x:.1f}x cheaper" if summary.savings_x else ""
    console.print(
        f"{summary.tasks} tasks in {summary.wall_s:.1f} s ({summary.tasks_per_s:.2f} tasks/s); "
        f"cost ${summary.usd:.6f} vs ${summary.counterfactual_usd:.6f} all-frontier {x}"
    )
    console.print(f"frontier: {frontier_label}")
