"""Run history read back from the Prefect API: one row per run, from each run's ledger artifact.

Works against whatever server PREFECT_API_URL names, so a team's shared server shows everyone's
runs.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

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


PAGE = 200  # the most the artifacts endpoint returns per request


def read_history(job: str | None = None, since: datetime | None = None, limit: int = 2000) -> list[RunRow]:
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
    rows = []
    for art in artifacts:
        data = json.loads(art.data) if isinstance(art.data, str) else art.data
        if not data or art.flow_run_id is None or art.created is None:
            continue
        rows.append(
            RunRow(
                flow_run_id=str(art.flow_run_id),
                started=datetime.fromisoformat(art.created.isoformat()),
                summary=from_ledger_row(data[0]),
            )
        )
    if since:
        rows = [r for r in rows if r.started >= since]
    return sorted(rows, key=lambda r: r.started)


def plot_history(rows: list[RunRow], path: Path) -> Path:
    """Cost against the all-frontier counterfactual over time, and the escalation rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (cost, rate) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    when = [r.started for r in rows]
    cost.plot(when, [r.summary.counterfactual_usd for r in rows], "o-", color="tab:red", label="all-frontier")
    cost.plot(when, [r.summary.usd for r in rows], "o-", color="tab:green", label="slmflow")
    cost.set_ylabel("USD per run")
    cost.set_title("Cost per run against the all-frontier counterfactual")
    cost.legend()
    rate.plot(when, [r.summary.pct("escalated") for r in rows], "o-", label="escalated")
    rate.plot(when, [r.summary.pct("needs_review") for r in rows], "o-", color="tab:orange", label="needs review")
    rate.set_ylabel("% of tasks")
    rate.set_ylim(bottom=0)
    rate.legend()
    fig.autofmt_xdate()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
