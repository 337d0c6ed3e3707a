"""The job flow, top to bottom as the data path runs:

load + validate the spec (every item read once) -> find or start the fleet -> ingest the collections
-> open the tools -> run the DAG over the items as they stream in (ground, draft, verify, escalate,
run verified tool calls) -> results appended as units settle -> artifacts + summary.

How the units are orchestrated depends on the job's size (`plan`): a small job makes each unit its
own Prefect task run, so the UI shows it unit by unit; a large one runs in batches, one task run per
batch of items (flows.batch); with `shards` > 1 the batches are split over the shard pool's Prefect
workers (flows.shard). The verdicts, ledger and escalation of each unit are the same in every mode.

Running the same job again reuses every unit an earlier run already verified (flows.cache), so a run
that crashed or was interrupted resumes where it stopped; `recompute=True` runs them all.

Its parameters are typed (flows.parameters), so a deployment of a job shows them as a form. A run
that leaves units for review opens one review per unit (flows.review) and ends `NeedsReview`; one
whose every unit is verified ends `Completed` (flows.states.run_state).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import State
from pydantic import Field
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from flows import events
from flows.budget import BudgetSpec
from flows.catalog import resolve_spec
from flows.parameters import RunParameters, TaskOverride, apply_parameters, job_name
from flows.report import print_summary, publish_artifacts
from flows.results import ResultsWriter
from flows.review import ReviewCase, open_reviews
from flows.run import Plan, results_path, run_batches, run_units, unit_context, unit_threads
from flows.shard import run_shards
from flows.spec import SpecError, load_job, python_registry
from flows.states import run_state
from flows.summary import RunSummary
from slmflow.core.records import TaskResult
from slmflow.core.settings import get_settings
from workers.fleet import frontier_endpoint


def job_run_name() -> str:
    """What ran and when: `support-inbox 2025-06-02 07:00:00 UTC`."""
    start = flow_run.scheduled_start_time or datetime.now(UTC)
    return f"{job_name(flow_run.parameters['spec'])} {start.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


# Prefect declares TaskRunner invariant in its future type, so its own thread pool does not type-check.
@flow(name="slmflow-job", flow_run_name=job_run_name, log_prints=True, task_runner=unit_threads())  # type: ignore[arg-type]
def run_job(
    spec: str,
    limit: Annotated[int, Field(ge=1)] | None = None,
    recompute: bool = False,
    shards: Annotated[int, Field(ge=1, le=64)] | None = None,
    budget: BudgetSpec | None = None,
    overrides: dict[str, TaskOverride] | None = None,
) -> State:
    """Run an agent job.

    Args:
        spec: a shipped job's name, or a job spec file
        limit: only the first N items
        recompute: run every unit again instead of reusing those an earlier run of the same job,
            models and settings already verified
        shards: split a large job over the shard pool's workers (default: the spec's)
        budget: the frontier budget of this run (default: the spec's)
        overrides: per task id: verifier thresholds, escalation policy, max tokens
    """
    settings = get_settings()
    logger = get_run_logger()
    params = RunParameters(limit=limit, budget=budget, overrides=overrides or {})
    job = apply_parameters(load_job(spec, limit=limit), params)
    plan = Plan.of(job, settings, shards)
    if plan.shards > 1 and (budget is not None or overrides):
        # Each shard loads the spec itself (flows.shard): it would run without them.
        raise SpecError(f"job '{job.spec.name}': parameters 'budget' and 'overrides' do not apply to sharded runs yet")
    logger.info(
        "job %s: %d items x %d tasks, %s",
        job.spec.name,
        job.count,
        len(job.spec.tasks),
        f"{plan.shards} shards" if plan.shards > 1 else "in batches" if plan.batched else "one task run per unit",
    )
    run_id = str(flow_run.get_id() or datetime.now(UTC).strftime("%Y%m%dT%H%M%S"))
    _, _, frontier_label = frontier_endpoint(settings)
    path = results_path(settings, job, run_id)
    start = time.perf_counter()
    results: list[TaskResult] = []  # kept for small jobs only (the per-unit table)
    if plan.shards > 1:
        summary = run_shards(job, spec, limit, recompute, plan, run_id, path)
    else:
        writer = ResultsWriter(path, Path(settings.results_dir) / "labels.jsonl")
        with writer, unit_context(job, settings, run_id, recompute, batched=plan.batched) as ctx, _progress() as bar:
            task = bar.add_task(job.spec.name, total=job.units)
            summary = RunSummary(job=job.spec.name, run_id=run_id)
            if plan.batched:
                for report in run_batches(job, ctx, plan, settings.batches_in_flight, writer):
                    summary.merge(report.summary)
                    bar.advance(task, report.summary.tasks)
            else:
                results = run_units(job, ctx, settings.task_retries, writer, on_result=lambda r: bar.advance(task))
                for r in results:
                    summary.add(r)
    summary.wall_s = time.perf_counter() - start
    summary.results_path = str(path)
    if settings.open_reviews and flow_run.get_id() and summary.counts["needs_review"]:
        case = ReviewCase(
            job=job.spec.name,
            spec=str(resolve_spec(spec).resolve()),
            run_id=run_id,
            results=str(path.resolve()),
            item_id="",
            task_id="",
            parameters=params,
        )
        began = time.perf_counter()
        opened = open_reviews(job, case, None, python_registry(job))
        logger.info(
            "%d units await review (opened in %.1f s): `slmflow review list --run %s`",
            len(opened),
            time.perf_counter() - began,
            run_id,
        )
    publish_artifacts(summary, frontier_label, results)
    print_summary(summary, frontier_label)
    state = run_state(summary.counts, summary.model_dump())
    events.run_summary(summary, state.name or state.type.value)
    return state


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=False
    )
