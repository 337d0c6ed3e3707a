"""Run history read back from the Prefect API: one row per run, from each run's ledger artifact.

Works against whatever server PREFECT_API_URL names, so a team's shared server shows everyone's
runs.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.client.schemas.sorting import ArtifactSort
from pydantic import BaseModel

from flows.report import LEDGER, artifact_key, from_ledger_row
from flows.summary import RunSummary


class RunRow(BaseModel):
    flow_run_id: str
    started: datetime
    summary: RunSummary

    def metrics(self) -> dict[str, Any]:
        """The run's figures as `slmflow history --json` gives them; rates in %."""
        s = self.summary
        open_, approved, rejected = (s.counts.get(k, 0) for k in ("needs_review", "approved", "rejected"))
        decided = approved + rejected
        return {
            "flow_run_id": self.flow_run_id,
            "started": self.started.isoformat(),
            "tasks": s.tasks,
            "counts": s.counts,
            "cost_usd": s.usd,
            "counterfactual_usd": s.counterfactual_usd,
            "cost_per_task_usd": s.usd / s.tasks if s.tasks else 0.0,
            "escalation_rate": s.pct("escalated"),
            # Units that needed a person: those still open and those decided.
            "reviewed": open_ + decided,
            "review_rate": 100.0 * (open_ + decided) / s.tasks if s.tasks else 0.0,
            "open": open_,
            "decided": decided,
            "overturned": s.overturned,  # a reviewer approved a draft the verifier had rejected
            "corrected": approved - s.overturned,  # a reviewer entered the answer
            "rejected": rejected,
            "overturn_rate": 100.0 * s.overturned / decided if decided else None,
        }


PAGE = 200  # the most the artifacts endpoint returns per request


def read_history(job: str | None = None, since: datetime | None = None, limit: int = 2000) -> list[RunRow]:
    """One row per job run, oldest first. A run's ledger gets a new version with every review
    decision (flows.review.republish): the newest version is its figures, the oldest its start."""
    key = ArtifactFilterKey(any_=[artifact_key(job, LEDGER)]) if job else ArtifactFilterKey(like_=f"%-{LEDGER}")
    artifacts: list = []
    with get_client(sync_client=True) as client:
        while len(artifacts) < limit:
            page = client.read_artifacts(
                artifact_filter=ArtifactFilter(key=key),
                sort=ArtifactSort.CREATED_DESC,
                limit=min(PAGE, limit - len(artifacts)),
                offset=len(artifacts),
            )
            artifacts.extend(page)
            if len(page) < PAGE or (since and page[-1].created and page[-1].created < since):
                break
    rows: dict[str, RunRow] = {}
    for art in artifacts:  # newest first
        data = json.loads(art.data) if isinstance(art.data, str) else art.data
        if not data or art.flow_run_id is None or art.created is None:
            continue
        created = datetime.fromisoformat(art.created.isoformat())
        run = str(art.flow_run_id)
        if run in rows:
            rows[run].started = min(rows[run].started, created)
        else:
            rows[run] = RunRow(flow_run_id=run, started=created, summary=from_ledger_row(data[0]))
    found = list(rows.values())
    if since:
        found = [r for r in found if r.started >= since]
    return sorted(found, key=lambda r: r.started)


def by_job(rows: list[RunRow]) -> dict[str, list[RunRow]]:
    """Each job's own series, in time order: unrelated jobs are never one line."""
    series: dict[str, list[RunRow]] = {}
    for row in rows:
        series.setdefault(row.summary.job, []).append(row)
    return series


def plot_history(rows: list[RunRow], path: Path) -> Path:
    """One series per job in each panel: cost per task against the all-frontier counterfactual,
    escalation rate, review rate with how many decisions overturned the verifier."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (cost, esc, rev) = plt.subplots(3, 1, figsize=(9, 9), sharex=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (job, series) in enumerate(sorted(by_job(rows).items())):
        colour = colours[i % len(colours)]
        when = [r.started for r in series]
        m = [r.metrics() for r in series]
        cost.plot(when, [x["cost_per_task_usd"] for x in m], "o-", color=colour, label=job)
        cost.plot(
            when,
            [r.summary.counterfactual_usd / r.summary.tasks if r.summary.tasks else 0 for r in series],
            "x--",
            color=colour,
            alpha=0.5,
        )
        esc.plot(when, [x["escalation_rate"] for x in m], "o-", color=colour, label=job)
        rev.plot(when, [x["review_rate"] for x in m], "o-", color=colour, label=f"{job}: reviewed")
        rev.plot(
            when,
            [100.0 * x["overturned"] / r.summary.tasks if r.summary.tasks else 0 for x, r in zip(m, series)],
            "v:",
            color=colour,
            label=f"{job}: overturned",
        )
    cost.set_ylabel("USD per task")
    cost.set_title("Cost per task (solid) against the all-frontier counterfactual (dashed)")
    esc.set_ylabel("% escalated")
    rev.set_ylabel("% of tasks")
    rev.set_title("Units that needed review, and decisions that overturned the verifier")
    for ax in (cost, esc, rev):
        ax.set_ylim(bottom=0)
        ax.legend(fontsize="small")
    fig.autofmt_xdate()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
