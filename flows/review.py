"""Review: a needs_review unit is a Prefect flow run waiting for a person's decision.

At the end of a job run, each needs_review unit gets a run of the `slmflow-review/review` deployment,
put straight into Suspended with its decision form (`flows.decisions`): the item, the task, the
evidence, both drafts and the verifier's reasons as the Resume dialog's text, the task's contract as
the form's schema. Opening one takes a few API calls and no process: a suspended run holds no
worker, no process and nothing of the fleet, for as long as the reviewer takes (no timeout).

A decision (the UI's Resume, or `slmflow review decide`) is validated by the Prefect server
against the form and reschedules the run; a worker (or the CLI, in-process) runs this flow, which
reads the decision back through `suspend_flow_run` (its pause key has fired) and applies it
(`apply_decision`): the unit's new record is appended to the run's results file, the decision to
the journal and its labels to the label store; every unit of the item that was blocked only on it
runs now, through the same cascade, cache and ledger as the run's, within what is left of the
run's budget; a unit that then needs review gets its own review. The run's artifacts get a new
version, and once no unit of the run awaits review, the run's state becomes `Reviewed`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import ArtifactCreate
from prefect.flow_runs import suspend_flow_run
from prefect.input.run_input import keyset_from_paused_state
from prefect.runtime import flow_run
from prefect.states import Completed, Running, State, Suspended
from pydantic import BaseModel, Field

from flows import events
from flows.budget import BudgetSpec
from flows.cascade import UnitContext
from flows.decisions import (
    Decision,
    DecisionError,
    answer_of,
    decided_result,
    decision_form,
    decision_labels,
    form_schema,
    review_markdown,
    where,
)
from flows.inputs import Item
from flows.ledger import Ledger
from flows.parameters import RunParameters, apply_parameters, job_tag
from flows.report import artifact_key, ledger_row, summary_markdown, table_rows
from flows.resultlog import append_jsonl, append_results, decisions_path, labels_path, locked, read_results
from flows.scheduler import prefect_units, settle
from flows.spec import Job, TaskSpec, load_job
from flows.states import REVIEWED
from flows.summary import RunSummary
from flows.workpool import deployment, deployment_id, register
from slmflow.core.records import Status, TaskResult
from slmflow.core.settings import get_settings
from tools.registry import NO_TOOL, Tool, ToolRegistry, pseudo_tool

REVIEW_FLOW = "slmflow-review"
REVIEW_DEPLOYMENT = "review"
PAUSE_KEY = "decision"


class ReviewCase(BaseModel):
    """One needs_review unit of one job run: the review flow's parameter."""

    job: str = Field(description="the job's name")
    spec: str = Field(description="the spec file the run loaded")
    run_id: str = Field(description="the job's flow run")
    results: str = Field(description="the run's results file")
    item_id: str
    task_id: str
    parameters: RunParameters = Field(default_factory=RunParameters, description="the run's parameters")

    @property
    def where(self) -> str:
        return where(self.job, self.task_id, self.item_id)

    @property
    def run_name(self) -> str:
        return f"review {self.job} {self.task_id}[{self.item_id}]"

    def load(self) -> Job:
        return apply_parameters(load_job(self.spec, limit=self.parameters.limit), self.parameters)


def review_run_name() -> str:
    return ReviewCase.model_validate(flow_run.parameters["case"]).run_name


@flow(name=REVIEW_FLOW, flow_run_name=review_run_name, log_prints=True)
def review_unit(case: ReviewCase) -> State:
    """Wait, suspended, for a reviewer's decision on one unit; then apply it."""
    review_id = str(flow_run.get_id())
    # Opened by its job run, this run is resumed with the decision already given: the pause key has
    # fired, so this returns the decision instead of suspending again.
    decision = suspend_flow_run(wait_for_input=Decision, key=PAUSE_KEY)
    outcome = apply_decision(case, decision, review_id, context=review_context(case))
    create_markdown_artifact(
        key=artifact_key(case.job, "review"),
        markdown=outcome.markdown(),
        description=f"Decision on {case.task_id}[{case.item_id}] of run {case.run_id}",
    )
    get_run_logger().info(outcome.line())
    return Completed(name=outcome.after.status.value.capitalize(), message=outcome.line(), data=outcome.summary())


class Outcome(BaseModel):
    """What a decision did: the unit's new record and the units it unblocked."""

    case: ReviewCase
    after: TaskResult
    unblocked: list[TaskResult]
    reviews: dict[str, str] = {}  # unblocked units that need review now -> their review run
    applied: bool = True  # False: this review's decision was already recorded (a rerun)

    def line(self) -> str:
        review = self.after.review
        assert review is not None
        ran = ", ".join(f"{r.task_id}[{r.item_id}] {r.status.value}" for r in self.unblocked) or "none"
        return (
            f"{self.case.task_id}[{self.case.item_id}]: {review.action} by {review.reviewer} -> "
            f"{self.after.status.value}; unblocked: {ran}"
        )

    def markdown(self) -> str:
        review = self.after.review
        assert review is not None
        lines = [
            f"# {self.case.task_id}[{self.case.item_id}]: {self.after.status.value}",
            "",
            "| job run | decision | reviewer | decided (UTC) | reason |",
            "|---|---|---|---|---|",
            f"| `{self.case.run_id}` | {review.action} | {review.reviewer} | "
            f"{review.decided_at:%Y-%m-%d %H:%M:%S} | {review.reason or '-'} |",
            "",
            f"Result: `{_short(self.after.output)}`",
            "",
            f"Results file: `{self.case.results}` (the decision is appended; the run's record stays).",
        ]
        if self.unblocked:
            lines += ["", "| unblocked unit | status | model | reasons |", "|---|---|---|---|"]
            lines += [
                f"| {r.task_id}[{r.item_id}] | {r.status.value} | {r.model or ''} | {'; '.join(r.reasons)[:200]} |"
                for r in self.unblocked
            ]
        return "\n".join(lines)

    def summary(self) -> dict[str, Any]:
        return {
            "unit": f"{self.case.task_id}[{self.case.item_id}]",
            "status": self.after.status.value,
            "unblocked": {f"{r.task_id}[{r.item_id}]": r.status.value for r in self.unblocked},
            "reviews": self.reviews,
        }


def _short(value: Any, n: int = 300) -> str:
    text = str(value)
    return text if len(text) <= n else text[: n - 1] + "…"


ContextFactory = Callable[[Job, list[TaskResult], ExitStack], UnitContext]


def review_context(case: ReviewCase) -> ContextFactory:
    """The run's context on the fleet, for the units a decision unblocks (and to run an approved
    tool call): entered only when needed, with what is left of the run's budget."""

    def enter(job: Job, results: list[TaskResult], stack: ExitStack) -> UnitContext:
        from flows.run import unit_context
        from workers.fleet import frontier_endpoint

        settings = get_settings()
        left = remaining_budget(job.spec.budget, results, Ledger(settings, frontier_endpoint(settings)[1]))
        return stack.enter_context(unit_context(job, settings, case.run_id, False, batched=False, budget=left))

    return enter


def remaining_budget(spec: BudgetSpec, results: list[TaskResult], ledger: Ledger) -> BudgetSpec:
    """What the run's budget has left after every frontier call its results record."""
    frontier = [a.draft for r in results for a in r.attempts if a.role == "frontier"]
    spent = sum(ledger.draft_usd(d) for d in frontier)
    return BudgetSpec(
        max_usd=max(0.0, spec.max_usd - spent) if spec.max_usd is not None else None,
        max_escalations=max(0, spec.max_escalations - len(frontier)) if spec.max_escalations is not None else None,
    )


def apply_decision(case: ReviewCase, decision: Decision, review_id: str, context: ContextFactory) -> Outcome:
    """Record `decision` on the case's unit and run what it unblocked. Idempotent per review: a
    rerun of the same review records nothing twice and only finishes what is left."""
    job = case.load()
    task = job.spec.task(case.task_id)
    item = _item(job, case)
    path = Path(case.results)
    settings = get_settings()
    with ExitStack() as stack:
        ctx: UnitContext | None = None

        def ensure_ctx() -> UnitContext:
            nonlocal ctx
            if ctx is None:
                ctx = context(job, list(results.values()), stack)
            return ctx

        with locked(path):
            results = {r.key: r for r in read_results(path)}
            key = f"{item.id}::{task.id}"
            before = results.get(key)
            if before is None:
                raise DecisionError(f"{case.where}: no such unit in {path}")
            applied = not (before.review is not None and before.review.id == review_id)
            if applied:
                if before.status is not Status.needs_review:
                    raise DecisionError(f"{case.where}: the unit is {before.status.value}, not awaiting review")
                answer = answer_of(before, decision)
                after = decided_result(before, decision, review_id, _output(task, item, before, answer, ensure_ctx))
                append_results(path, [after])
                append_jsonl(decisions_path(settings), [_journal(case, review_id, before, after, answer)])
                append_jsonl(labels_path(settings), decision_labels(before, after, answer))
                results[key] = after
            else:
                after = before
            unblocked = run_unblocked(job, item, task, results, ensure_ctx)
            append_results(path, unblocked)
            latest = list(results.values())
        opened = open_reviews(job, case, unblocked, ctx.tools.registry if ctx is not None and ctx.tools else None)
    if applied:
        events.review_decided(before, after, unblocked)
    republish(case, latest)
    return Outcome(case=case, after=after, unblocked=unblocked, reviews=opened, applied=applied)


def _item(job: Job, case: ReviewCase) -> Item:
    for item in job.iter_items():
        if item.id == case.item_id:
            return item
    raise DecisionError(f"{case.where}: the job's inputs no longer have item '{case.item_id}'")


def _output(task: TaskSpec, item: Item, before: TaskResult, answer: Any, ctx: Callable[[], UnitContext]) -> Any:
    """What the unit's result holds for `answer`, shaped as a verified run would have it: a tool
    call runs now (through the run's allowlist, sandbox and side-effect ledger), an agent's answer
    keeps its step count."""
    if answer is None:
        return None
    if task.kind == "tool_call":
        from slmflow.core.records import ToolCall

        call = ToolCall(name=answer["name"], arguments=answer.get("arguments") or {})
        observation = None if call.name == NO_TOOL else ctx().run_tool(task, item, call)
        return {"call": call.model_dump(), "observation": observation.model_dump() if observation else None}
    if task.kind == "agent":
        return {"answer": answer, "steps": len(before.steps)}
    return answer


def _journal(case: ReviewCase, review_id: str, before: TaskResult, after: TaskResult, answer: Any) -> dict[str, Any]:
    review = after.review
    assert review is not None
    return {
        "review_id": review_id,
        "job": case.job,
        "run_id": case.run_id,
        "item_id": case.item_id,
        "task_id": case.task_id,
        "action": review.action,
        "answer": answer,
        "reason": review.reason,
        "reviewer": review.reviewer,
        "decided_at": review.decided_at.isoformat(),
        "before": before.status.value,
        "after": after.status.value,
        "results": case.results,
    }


def run_unblocked(
    job: Job, item: Item, task: TaskSpec, results: dict[str, TaskResult], ctx: Callable[[], UnitContext]
) -> list[TaskResult]:
    """Run, in the DAG's order, each of the item's units downstream of `task` that is blocked and
    whose upstream is now all verified. `results` is updated as they finish."""
    dag = job.spec.dag
    downstream = _descendants(dag.dependents, task.id)
    ran: list[TaskResult] = []
    for task_id in dag.order:
        key = f"{item.id}::{task_id}"
        if task_id not in downstream or results[key].status is not Status.blocked:
            continue
        deps = dag.depends_on[task_id]
        if not all(results[f"{item.id}::{d}"].status.verified for d in deps):
            continue
        upstream = {d: results[f"{item.id}::{d}"].output for d in deps}
        result = run_one(ctx(), job, job.spec.task(task_id), item, upstream, results[key].run_id)
        results[key] = result
        ran.append(result)
    return ran


def _descendants(dependents: dict[str, list[str]], task_id: str) -> set[str]:
    found: set[str] = set()
    todo = list(dependents[task_id])
    while todo:
        t = todo.pop()
        if t not in found:
            found.add(t)
            todo += dependents[t]
    return found


def run_one(
    ctx: UnitContext, job: Job, task: TaskSpec, item: Item, upstream: dict[str, Any], run_id: str
) -> TaskResult:
    """One unit as the run's scheduler runs it: the same Prefect task, retries and unit cache."""
    future = prefect_units(ctx, get_settings().task_retries)(item, task, upstream)
    # A reused (cached) result belongs to this run's record now.
    return settle(ctx, job, item, task.id, future).model_copy(update={"run_id": run_id})


def ensure_review_deployment() -> UUID:
    """The deployment every review run belongs to (Prefect suspends only deployment runs)."""
    found = deployment_id(REVIEW_FLOW, REVIEW_DEPLOYMENT)
    if found is not None:
        return found
    return register(
        deployment(
            review_unit,
            REVIEW_DEPLOYMENT,
            tags=["review"],
            description="One run per unit left for review; resume it with a decision (Run > Resume).",
        )
    )


def open_reviews(
    job: Job, case: ReviewCase, results: list[TaskResult] | None, tools: ToolRegistry | None
) -> dict[str, str]:
    """A suspended review run per needs_review result (`results`, or the run's results file), and
    its event. Returns unit key -> review run id. `case` gives the run's fields (its unit fields
    are replaced)."""

    def awaits(r: TaskResult) -> bool:
        return r.status is Status.needs_review

    pending = read_results(Path(case.results), awaits) if results is None else [r for r in results if awaits(r)]
    if not pending:
        return {}
    limit = get_settings().review_runs_max
    if len(pending) > limit:
        # A review run is a few API calls and a row per run: a million-unit job with 10% for review
        # would flood the server. The rest stay in the results file, as needs_review.
        get_run_logger().warning(
            "%d units await review; opening review runs for the first %d (SLMFLOW_REVIEW_RUNS_MAX); the rest are in %s",
            len(pending),
            limit,
            case.results,
        )
        pending = pending[:limit]
    deployment = ensure_review_deployment()
    wanted = {r.item_id for r in pending}
    items = {i.id: i for i in job.iter_items() if i.id in wanted}
    opened: dict[str, str] = {}
    with get_client(sync_client=True) as client:
        for result in pending:
            task = job.spec.task(result.task_id)
            unit = case.model_copy(update={"item_id": result.item_id, "task_id": result.task_id})
            schema = form_schema(task, result, _offered(task, tools))
            form = decision_form(schema, review_markdown(task, items[result.item_id], result, schema))
            opened[result.key] = str(open_review(client, deployment, unit, form, result))
    rank = _open_count(case.run_id, pending)
    for result in pending:
        rank += 1
        events.needs_review(result, rank, opened[result.key])
    return opened


def _offered(task: TaskSpec, tools: ToolRegistry | None) -> list[Tool] | None:
    """What a tool_call task offered, when the registry knows all of it (an MCP server's tools are
    known only while it runs: the contract then names the tools without their schemas)."""
    if tools is None or not task.tools or not all(name in tools for name in task.tools):
        return None
    return [*tools.select(task.tools), pseudo_tool(NO_TOOL)]


def _open_count(run_id: str, new: list[TaskResult]) -> int:
    """Reviews the run opened before these (a decision's unblocked units continue the numbering)."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

    with get_client(sync_client=True) as client:
        runs = client.count_flow_runs(flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[run_tag(run_id)])))
    return max(0, runs - len(new))


def run_tag(run_id: str) -> str:
    """The tag of every review a job run opened."""
    return f"run:{run_id}"


def open_review(client: Any, deployment: UUID, case: ReviewCase, form: type[Decision], result: TaskResult) -> UUID:
    """Create the unit's review run and suspend it on its form. Prefect suspends only a running
    run, so this one is created running and suspended at once; it never holds a process. It is
    never Scheduled either: a worker polling in that instant would take it, find it suspended when
    it proposes Pending, and die of the `Pause` Prefect raises there (a BaseException it lets out)."""
    run = client.create_flow_run_from_deployment(
        deployment,
        parameters={"case": case.model_dump(mode="json")},
        name=case.run_name,
        tags=[job_tag(case.job), run_tag(case.run_id), "review"],
        state=Running(message="opening the review"),
    )
    reasons = "; ".join(result.reasons) or result.error or "verification failed"
    state: State[Any] = Suspended(timeout_seconds=None, pause_key=PAUSE_KEY, message=reasons[:500])
    keyset = keyset_from_paused_state(state)
    state.state_details.run_input_keyset = {str(k): v for k, v in keyset.items()}
    answer = client.set_flow_run_state(run.id, state)
    if not answer.state or not answer.state.is_paused():
        raise RuntimeError(f"{case.where}: the review run could not be suspended: {answer.details}")
    form.save(keyset, flow_run_id=run.id)
    return run.id


def republish(case: ReviewCase, results: list[TaskResult]) -> None:
    """A new version of the run's results table, summary and ledger, attached to the job run, and
    its state once nothing awaits review."""
    from workers.fleet import frontier_endpoint

    settings = get_settings()
    run_uuid = UUID(case.run_id)
    with get_client(sync_client=True) as client:
        job_run = client.read_flow_run(run_uuid)
        wall_s = job_run.total_run_time.total_seconds() if job_run.total_run_time else 0.0
        summary = RunSummary.of(case.job, case.run_id, results, wall_s)
        summary.results_path = case.results
        label = frontier_endpoint(settings)[2]
        stamp = f"after review, {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC"
        for key, kind, data, description in (
            ("results", "table", _table(table_rows(results)), f"Per-task verdicts and costs ({stamp})"),
            ("summary", "markdown", summary_markdown(summary, label), f"Run summary ({stamp})"),
            ("ledger", "table", _table([ledger_row(summary)]), f"Run totals ({stamp})"),
        ):
            client.create_artifact(
                ArtifactCreate(
                    key=artifact_key(case.job, key), type=kind, data=data, description=description, flow_run_id=run_uuid
                )
            )
        if not summary.counts[Status.needs_review.value] and job_run.state and job_run.state.name != REVIEWED:
            decided = summary.counts[Status.approved.value] + summary.counts[Status.rejected.value]
            client.set_flow_run_state(
                run_uuid,
                Completed(name=REVIEWED, message=f"every review decided: {decided} units"),
                force=True,
            )


def _table(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, default=str)
