"""The pieces a run is made of, shared by the job flow (flows.job) and its shards (flows.shard): the plan
that decides how units are orchestrated, the context every unit shares, and the two ways of running
them (one task run per unit, or per batch of items)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from itertools import count, islice
from pathlib import Path
from typing import Any

from prefect import get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import quote
from pydantic import BaseModel

from flows import events
from flows.batch import BatchReport, run_batch
from flows.budget import Budget, BudgetSpec
from flows.cache import UnitCache, cache_version, unit_cache_dir
from flows.cascade import UnitContext
from flows.ledger import Ledger
from flows.ratelimit import RateLimited, ensure_frontier_rate_limit
from flows.results import ResultsWriter
from flows.scheduler import prefect_units, run_dag
from flows.spec import Job
from flows.tooling import open_tools
from slmflow.core.records import TaskResult
from slmflow.core.settings import Settings, get_settings
from workers.fleet import frontier_endpoint, get_fleet
from workers.remote import RayWorkers


def unit_threads() -> ThreadPoolTaskRunner[Any]:
    """The flows' task runner. Threads are the requests in flight: each unit (or batch) waits on
    actor calls, not on a core."""
    return ThreadPoolTaskRunner(max_workers=get_settings().task_concurrency)


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


@contextmanager
def unit_context(
    job: Job, settings: Settings, run_id: str, recompute: bool, batched: bool, budget: BudgetSpec | None = None
) -> Iterator[UnitContext]:
    """The fleet (checked), the job's collections and tools, the ledger, budget and cache: what every
    unit of the run (or of a shard) shares. Closes the tools when the run is done. `budget`: what is
    left of the run's (a review's unblocked units); the spec's by default. Its first refusal is an
    event (flows.events)."""
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
            Budget(
                budget or job.spec.budget,
                on_exhausted=lambda reason: events.budget_exhausted(
                    job.spec.name, run_id, reason, job.spec.budget.model_dump(mode="json")
                ),
            ),
            UnitCache(unit_cache_dir(settings), cache_version(settings, job), refresh=recompute),
            tools,
            step_task_runs=not batched,
            retries=settings.task_retries,
            threads=settings.task_concurrency,
            alternatives=(settings.verifier.alternatives, settings.verifier.alternatives_temperature),
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
    # The stream is read once, front to back: each batch is handed its items, so the driver holds
    # only the batches in flight.
    stream = job.iter_items(start, stop)
    pending: list = []
    first = start
    # One pool for the batches in flight, `ctx.threads` units each: a batch's last units leave
    # threads idle that the next batch's first ones take, and threads are started once per run.
    with ThreadPoolExecutor(ctx.threads * in_flight, thread_name_prefix="units") as pool:
        for index in count():
            items = list(islice(stream, plan.batch_items))
            if not items:
                break
            named = run_batch.with_options(task_run_name=f"batch {index} [{first}-{first + len(items) - 1}]")
            # quote(): Prefect would otherwise walk every item, the spec and the context looking for
            # futures to wait on, which costs more than running the batch's units. It hands the task
            # the unwrapped values, which its typed signature cannot say.
            arguments: list[Any] = [quote(ctx), quote(job), index, first, quote(items), quote(writer), quote(pool)]
            pending.append(named.submit(*arguments))
            first += len(items)
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
