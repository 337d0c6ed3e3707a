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
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from flows.report import print_summary, publish_artifacts
from flows.results import ResultsWriter
from flows.run import Plan, results_path, run_batches, run_units, unit_context, unit_threads
from flows.shard import run_shards
from flows.spec import load_job
from flows.summary import RunSummary
from slmflow.core.records import TaskResult
from slmflow.core.settings import get_settings
from workers.fleet import frontier_endpoint


# Prefect declares TaskRunner invariant in its future type, so its own thread pool does not type-check.
@flow(name="slmflow-job", log_prints=True, task_runner=unit_threads())  # type: ignore[arg-type]
def run_job(spec: str, limit: int | None = None, recompute: bool = False, shards: int | None = None) -> dict:
    """Run an agent job: a spec file, or the name of a shipped job. `limit` keeps only the first N
    items. Units verified by an earlier run of the same job, models and settings are reused unless
    `recompute` is set. `shards` (default: the spec's) splits a large job over the shard pool."""
    settings = get_settings()
    logger = get_run_logger()
    job = load_job(spec, limit=limit)
    plan = Plan.of(job, settings, shards)
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
    publish_artifacts(summary, frontier_label, results)
    print_summary(summary, frontier_label)
    return summary.model_dump()


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=False
    )
