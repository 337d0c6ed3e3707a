"""The review queue as the Prefect API holds it: every suspended run of the review deployment is one
unit awaiting a decision. `slmflow review` reads and decides through here; the UI shows the same runs
(filter the Runs page on the flow `slmflow-review`, the state Suspended, or the tag `job:<name>`).

A decision goes in the way the UI's Resume dialog sends it: checked against the review's own form,
then `resume_flow_run`, which the Prefect server validates again and which reschedules the run.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
    FlowRunFilterTags,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.flow_runs import resume_flow_run
from prefect.input.actions import read_flow_run_input
from prefect.input.run_input import keyset_from_base_key
from pydantic import BaseModel

from flows.decisions import Decision, check_decision
from flows.parameters import job_tag
from flows.resultlog import read_results
from flows.review import PAUSE_KEY, REVIEW_FLOW, ReviewCase, run_tag
from flows.workpool import work_pool

# The keys `suspend_flow_run` stores a Suspended run's form under.
FORM = keyset_from_base_key(f"suspended-{PAUSE_KEY}")


class QueuedReview(BaseModel):
    """One unit awaiting (or past) a decision."""

    id: str
    job: str
    run: str
    task: str
    item: str
    reasons: list[str]
    state: str
    opened: datetime | None
    case: ReviewCase

    def row(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"case"}) | {"results": self.case.results}


def _queued(run: FlowRun, reasons: dict[str, list[str]]) -> QueuedReview:
    case = ReviewCase.model_validate(run.parameters["case"])
    return QueuedReview(
        id=str(run.id),
        job=case.job,
        run=case.run_id,
        task=case.task_id,
        item=case.item_id,
        reasons=reasons.get(f"{case.results}|{case.item_id}::{case.task_id}", []),
        state=run.state.name if run.state else "unknown",
        opened=run.created,
        case=case,
    )


def _reasons(cases: list[ReviewCase]) -> dict[str, list[str]]:
    """The verifier's reasons of each case's unit, read from its run's results file (one read per
    file). A file this machine cannot read leaves them empty."""
    found: dict[str, list[str]] = {}
    for path in {c.results for c in cases}:
        try:
            for r in read_results(Path(path)):
                found[f"{path}|{r.key}"] = r.reasons or ([r.error] if r.error else [])
        except (OSError, ValueError):
            continue
    return found


def open_reviews(job: str | None = None, run: str | None = None, limit: int = 5000) -> list[QueuedReview]:
    """Units awaiting a decision, oldest first."""
    tags = [job_tag(job)] if job else []
    if run:
        tags.append(run_tag(run))
    runs: list[FlowRun] = []
    with get_client(sync_client=True) as client:
        while len(runs) < limit:
            page = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=[REVIEW_FLOW])),
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED])),
                    tags=FlowRunFilterTags(all_=tags) if tags else None,
                ),
                sort=FlowRunSort.EXPECTED_START_TIME_ASC,
                limit=200,
                offset=len(runs),
            )
            runs += page
            if len(page) < 200:
                break
    cases = [ReviewCase.model_validate(r.parameters["case"]) for r in runs]
    reasons = _reasons(cases)
    return [_queued(r, reasons) for r in runs]


def find_review(review_id: str) -> QueuedReview:
    """A review by its run id, or by a prefix of it unique among the open reviews."""
    with get_client(sync_client=True) as client:
        try:
            run = client.read_flow_run(UUID(review_id))
        except ValueError:
            matches = [r for r in open_reviews() if r.id.startswith(review_id)]
            if len(matches) != 1:
                found = "no open review" if not matches else f"{len(matches)} open reviews"
                raise LookupError(f"review '{review_id}': {found} with that id") from None
            run = client.read_flow_run(UUID(matches[0].id))
        except Exception as exc:  # the API's 404 for an unknown id
            raise LookupError(f"review '{review_id}': {exc}") from None
    if "case" not in (run.parameters or {}):
        raise LookupError(f"flow run '{review_id}' is not a review")
    case = ReviewCase.model_validate(run.parameters["case"])
    return _queued(run, _reasons([case]))


def review_form(review_id: str) -> tuple[dict[str, Any], str]:
    """The review's decision form: its JSON schema and the markdown shown above it."""
    schema = read_flow_run_input(FORM["schema"], flow_run_id=UUID(review_id))
    if not isinstance(schema, dict):
        raise LookupError(f"review '{review_id}' has no decision form (it was not opened by a job run)")
    description = read_flow_run_input(FORM["description"], flow_run_id=UUID(review_id)) or ""
    return schema, str(description)


def submit_decision(review: QueuedReview, raw: dict[str, Any]) -> Decision:
    """Check `raw` against the review's form, then resume the review with it."""
    if review.state != "Suspended":
        raise LookupError(f"review '{review.id}' ({review.case.where}) is {review.state}, not awaiting a decision")
    schema, _ = review_form(review.id)
    decision = check_decision(raw, schema, review.case.where)
    resume_flow_run(UUID(review.id), run_input=decision.model_dump(mode="json", exclude_none=True))
    return decision


def worker_online() -> bool:
    """Whether a worker polls the pool review runs are scheduled on."""
    with get_client(sync_client=True) as client:
        try:
            workers = client.read_workers_for_work_pool(work_pool())
        except Exception:  # no such pool: nothing polls it
            return False
    return any(str(w.status).upper().endswith("ONLINE") for w in workers)
