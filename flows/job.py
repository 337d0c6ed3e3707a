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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from flows.batch import BatchReport, run_batch
from flows.budget import Budget
from flows.cache import UnitCache, cache_version, unit_cache_dir
from flows.cascade import UnitContext
from flows.ledger import Ledger
from flows.ratelimit import RateLimited, ensure_frontier_rate_limit
from flows.report import print_summary, publish_artifacts
from flows.results import ResultsWriter
from flows.scheduler import prefect_units, run_dag
from flows.spec import Job, load_job
from flows.summary import RunSummary
from flows.tooling import open_tools
from slmflow.core.records import TaskResult
from slmflow.core.settings import Settings, get_settings
from workers.fleet import frontier_endpoint, get_fleet
from workers.remote import RayWorkers

# Threads are the requests in flight: each unit waits on an actor call, not on a core.
_units_in_flight: ThreadPoolTaskRunner[Any] = ThreadPoolTaskRunner(max_workers=get_settings().task_concurrency)


class Plan(BaseModel):
    """How a run orchestrates its units (docs/scale.md)."""

    batched: bool
    batch_items: int
    shards: int

    @classmethod
    def of(cls, job: Job, settings: Settings, shards: int | None = None) -> Plan:
        e = job.spec.execution
        shards = shards or e.shards
        batch_above = e.batch_above or settings.batch_above
        # Shards run batches: a sharded job is a large one by definition.
        return cls(
            batched=shards > 1 or job.units > batch_above,
            batch_items=e.batch_items or settings.batch_items,
            shards=min(shards, job.count),
        )


# Prefect declares TaskRunner invariant in its future type, so its own thread pool does not type-check.
@flow(name="slmflow-job", log_prints=True, task_runner=_units_in_flight)  # type: ignore[arg-type]
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
        from flows.shard import run_shards

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


@contextmanager
def unit_context(job: Job, settings: Settings, run_id: str, recompute: bool, batched: bool) -> Iterator[UnitContext]:
    """The fleet (checked), the job's collections and tools, the ledger, budget and cache: what every
    unit of the run (or of a shard) shares. Closes the tools when the run is done."""
    fleet = get_fleet(settings)
    fleet.check_frontier()
    ensure_frontier_rate_limit(settings.frontier_rpm)
    prepare_collections(job, fleet)
    _, frontier_model, _ = frontier_endpoint(settings)
    tools = open_tools(job, settings)
    try:
        yield UnitContext(
            job.spec.name,
            run_id,
            RateLimited(RayWorkers(fleet)),
            Ledger(settings, frontier_model),
            Budget(job.spec.budget),
            UnitCache(unit_cache_dir(settings), cache_version(settings, job), refresh=recompute),
            tools,
            step_task_runs=not batched,
            retries=settings.task_retries,
            threads=settings.task_concurrency,
        )
    finally:
        if tools is not None:
            tools.close()


def run_units(
    job: Job,
    ctx: UnitContext,
    retries: int,
    writer: ResultsWriter | None = None,
    on_result: Callable[[TaskResult], None] = lambda r: None,
) -> list[TaskResult]:
    """A small job: every unit its own Prefect task run. Its results stay in memory for the per-unit
    table artifact, which is what makes this mode the small one."""
    results: list[TaskResult] = []

    def settled(r: TaskResult) -> None:
        results.append(r)
        if writer is not None:
            writer.write([r])
        on_result(r)

    # Twice the threads: a unit waiting for its upstream holds no thread.
    run_dag(job, ctx, job.iter_items(), prefect_units(ctx, retries), window=2 * ctx.threads, on_result=settled)
    return results


def run_batches(
    job: Job,
    ctx: UnitContext,
    plan: Plan,
    in_flight: int,
    writer: ResultsWriter,
    start: int = 0,
    stop: int | None = None,
) -> Iterator[BatchReport]:
    """Items `start`..`stop` in batches of `plan.batch_items`, `in_flight` batch task runs at once;
    each batch's report as it finishes (in order of submission)."""
    stop = job.count if stop is None else stop
    bounds = [(i, min(i + plan.batch_items, stop)) for i in range(start, stop, plan.batch_items)]
    pending: list = []
    for index, (first, last) in enumerate(bounds):
        future = run_batch.with_options(task_run_name=f"batch {index} [{first}-{last - 1}]")
        pending.append(future.submit(ctx, job, index, first, last, writer))
        if len(pending) >= in_flight:
            yield pending.pop(0).result()
    for future in pending:
        yield future.result()


def results_path(settings: Settings, job: Job, run_id: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path(settings.results_dir) / job.spec.name / f"{stamp}-{run_id[:8]}.jsonl"


def prepare_collections(job: Job, fleet) -> None:
    """Ingest every declared collection (a no-op when its manifest matches the inputs)."""
    import ray

    logger = get_run_logger()
    for name in job.spec.collections:
        report = ray.get(fleet.retrieval.ensure_ingested.remote(name, str(job.collection_path(name))))
        state = "unchanged" if report.skipped_unchanged else "ingested"
        logger.info("collection %s: %s, %d documents, %d chunks", name, state, report.documents, report.chunks)
        for problem in report.problems:
            logger.warning("collection %s: skipped %s: %s", name, problem.path, problem.reason)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=False
    )
