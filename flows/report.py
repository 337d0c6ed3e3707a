"""What a run leaves behind: a results JSONL, Prefect artifacts, and a summary on the console."""

from __future__ import annotations

import json
from pathlib import Path

from prefect.artifacts import create_markdown_artifact, create_table_artifact
from rich import box
from rich.console import Console
from rich.table import Table

from flows.ledger import RunSummary
from slmflow.core.records import Status, TaskResult

LEDGER = "ledger"
_STYLE = {
    Status.accepted: "green",
    Status.escalated: "yellow",
    Status.needs_review: "red",
    Status.failed: "red",
    Status.blocked: "magenta",
}


def write_results(results: list[TaskResult], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial")
    with tmp.open("w", encoding="utf-8") as f:
        for r in results:
            f.write(r.model_dump_json() + "\n")
    tmp.replace(path)
    return path


def escalation_labels(results: list[TaskResult]) -> list[dict]:
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


def append_labels(results: list[TaskResult], path: Path) -> int:
    rows = escalation_labels(results)
    if rows:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, default=str) + "\n")
    return len(rows)


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
    return {
        "job": s.job,
        "run_id": s.run_id,
        "tasks": s.tasks,
        **s.counts,
        "cost_usd": s.usd,
        "counterfactual_usd": s.counterfactual_usd,
        "wall_s": s.wall_s,
    }


def from_ledger_row(row: dict) -> RunSummary:
    return RunSummary(
        job=row["job"],
        run_id=row["run_id"],
        tasks=row["tasks"],
        counts={s.value: row.get(s.value, 0) for s in Status},
        usd=row["cost_usd"],
        counterfactual_usd=row["counterfactual_usd"],
        wall_s=row.get("wall_s", 0.0),
    )


def publish_artifacts(results: list[TaskResult], summary: RunSummary, frontier_label: str) -> None:
    """Three artifacts per run: the per-task table, the markdown summary, and a one-row ledger
    that `slmflow history` reads back (small, so history stays fast at any run size)."""
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


def print_summary(
    results: list[TaskResult], summary: RunSummary, frontier_label: str, console: Console | None = None
) -> None:
    console = console or Console()
    table = Table(title=f"{summary.job} — per task", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    # "frontier $" is the all-frontier counterfactual; short headers keep it in 80 columns.
    for col in ("task", "accepted", "escalated", "review", "failed", "blocked", "cost $", "frontier $"):
        table.add_column(col, justify="right" if col != "task" else "left", no_wrap=True)
    for task_id in dict.fromkeys(r.task_id for r in results):
        rows = [r for r in results if r.task_id == task_id]
        counts = {s: sum(r.status is s for r in rows) for s in Status}
        table.add_row(
            task_id,
            *(f"[{_STYLE[s]}]{counts[s]}[/]" for s in Status),
            f"{sum(r.cost.usd for r in rows):.4f}",
            f"{sum(r.cost.counterfactual_usd for r in rows):.4f}",
        )
    console.print(table)
    x = f"{summary.savings_x:.1f}x cheaper" if summary.savings_x else ""
    console.print(
        f"{summary.tasks} tasks in {summary.wall_s:.1f} s ({summary.tasks_per_s:.2f} tasks/s); "
        f"cost ${summary.usd:.6f} vs ${summary.counterfactual_usd:.6f} all-frontier {x}"
    )
    console.print(f"frontier: {frontier_label}")
