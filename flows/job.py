"""The job flow, top to bottom as the data path runs:

load + validate the spec -> find or start the fleet -> ingest the collections -> open the tools
-> run the DAG over every item (ground, draft, verify, escalate, run verified tool calls) ->
results JSONL + artifacts + summary.

Running the same job again reuses every unit an earlier run already verified (flows.cache.UnitCache),
so a run that crashed or was interrupted resumes where it stopped; `recompute=True` runs them all.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from flows.budget import Budget
from flows.cache import UnitCache, cache_version, unit_cache_dir
from flows.cascade import UnitContext
from flows.ledger import Ledger, RunSummary
from flows.ratelimit import RateLimited, ensure_frontier_rate_limit
from flows.report import append_labels, print_summary, publish_artifacts, write_results
from flows.scheduler import run_dag
from flows.spec import Job, load_job
from flows.tooling import open_tools
from slmflow.core.settings import get_settings
from workers.fleet import frontier_endpoint, get_fleet
from workers.remote import RayWorkers

# Threads are the requests in flight: each unit waits on an actor call, not on a core.
_units_in_flight: ThreadPoolTaskRunner[Any] = ThreadPoolTaskRunner(max_workers=get_settings().task_concurrency)


# Prefect declares TaskRunner invariant in its future type, so its own thread pool does not type-check.
@flow(name="slmflow-job", log_prints=True, task_runner=_units_in_flight)  # type: ignore[arg-type]
def run_job(spec: str, limit: int | None = None, recompute: bool = False) -> dict:
    """Run an agent job spec end to end. `limit` keeps only the first N items. Units verified by an
    earlier run of the same job, models and settings are reused unless `recompute` is set."""
    settings = get_settings()
    logger = get_run_logger()
    job = load_job(spec, limit=limit)
    logger.info("job %s: %d items x %d tasks", job.spec.name, len(job.items), len(job.spec.tasks))

    fleet = get_fleet(settings)
    fleet.check_frontier()
    ensure_frontier_rate_limit(settings.frontier_rpm)
    prepare_collections(job, fleet, logger)

    run_id = str(flow_run.get_id() or datetime.now(UTC).strftime("%Y%m%dT%H%M%S"))
    _, frontier_model, frontier_label = frontier_endpoint(settings)
    cache = UnitCache(unit_cache_dir(settings), cache_version(settings, job), refresh=recompute)
    tools = open_tools(job, settings)

    start = time.perf_counter()
    try:
        ctx = UnitContext(
            job.spec.name,
            run_id,
            RateLimited(RayWorkers(fleet)),
            Ledger(settings, frontier_model),
            Budget(job.spec.budget),
            cache,
            tools,
            alternatives=(settings.verifier.alternatives, settings.verifier.alternatives_temperature),
        )
        with _progress() as progress:
            bar = progress.add_task(job.spec.name, total=len(job.items) * len(job.spec.tasks))
            results = run_dag(job, ctx, retries=settings.task_retries, on_result=lambda r: progress.advance(bar))
    finally:
        if tools is not None:
            tools.close()
    summary = RunSummary.of(job.spec.name, run_id, results, time.perf_counter() - start)

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = write_results(results, Path(settings.results_dir) / job.spec.name / f"{stamp}-{run_id[:8]}.jsonl")
    summary.results_path = str(path)
    publish_artifacts(results, summary, frontier_label)
    append_labels(results, Path(settings.results_dir) / "labels.jsonl")
    print_summary(results, summary, frontier_label)
    return summary.model_dump()


def prepare_collections(job: Job, fleet, logger) -> None:
    """Ingest every declared collection (a no-op when its manifest matches the inputs)."""
    import ray

    for name in job.spec.collections:
        report = ray.get(fleet.retrieval.ensure_ingested.remote(name, str(job.collection_path(name))))
        state = "unchanged" if report.skipped_unchanged else "ingested"
        logger.info("collection %s: %s, %d documents, %d chunks", name, state, report.documents, report.chunks)
        for problem in report.problems:
            logger.warning("collection %s: skipped %s: %s", name, problem.path, problem.reason)


def _progress() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
