"""Batched orchestration: one Prefect task run for a batch of items, so a job of a million units writes
thousands of task runs to the Prefect database, not a million.

Inside a batch every unit runs exactly as it would on its own (`flows.unit.execute_unit`: the same
cascade, verdicts, ledger, budget and escalation), as a plain call in the run's thread pool, with
the DAG of each item walked by the same scheduler. What changes is the record: a batch is one task
run, its state says how many of its units were verified, and its artifact lists the units an
operator looks at (needs review, escalated, failed). Verified results are checkpointed per batch
(flows.cache), so a crashed run resumes batch by batch.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed, State
from pydantic import BaseModel

from flows.cascade import UnitContext
from flows.report import table_rows
from flows.results import ResultsWriter
from flows.scheduler import UnitFuture, run_dag, thread_units
from flows.spec import Item, Job, TaskSpec
from flows.summary import RunSummary
from slmflow.core.records import Status, TaskResult

ATTENTION = (Status.needs_review, Status.escalated, Status.failed)


class BatchReport(BaseModel):
    """What a batch hands back to its run: its totals, not its results (those are on disk)."""

    index: int
    start: int
    stop: int
    summary: RunSummary
    reused: int  # units read back from the batch's checkpoint instead of run


@task(cache_policy=NO_CACHE)
def run_batch(
    ctx: UnitContext,
    job: Job,
    index: int,
    start: int,
    items: list[Item],
    writer: ResultsWriter,
    pool: ThreadPoolExecutor,
) -> State:
    """The job's items from position `start` on, every task of each, as one task run. Its units run
    in `pool`, which the batches in flight share: the next batch's units take the threads the
    last units of this one leave idle."""
    began = time.perf_counter()
    stop = start + len(items)
    key = ctx.cache.batch_key(job, items) if ctx.cache else None
    stored = ctx.cache.load_batch(key) if ctx.cache and key else {}
    results: list[TaskResult] = []
    fresh = thread_units(ctx, pool, ctx.retries)

    def submit(item: Item, task: TaskSpec, upstream: dict[str, Any]) -> UnitFuture:
        reused = stored.get((item.id, task.id))
        if reused is None:
            return fresh(item, task, upstream)
        done: Future = Future()
        done.set_result(reused)
        return done

    run_dag(job, ctx, items, submit, window=len(items), on_result=results.append)
    if ctx.cache and key:
        ctx.cache.save_batch(key, results)
    writer.write(results)
    summary = RunSummary.of(job.spec.name, ctx.run_id, results, time.perf_counter() - began)
    report = BatchReport(
        index=index,
        start=start,
        stop=stop,
        summary=summary,
        reused=sum((r.item_id, r.task_id) in stored for r in results),
    )
    attention = [r for r in results if r.status in ATTENTION]
    counts = ", ".join(f"{n} {s}" for s, n in summary.counts.items() if n)
    create_table_artifact(
        table=table_rows(attention) or [{"units": len(results), "note": "every unit verified by the small model"}],
        description=f"Batch {index} (items {start}-{stop - 1}): {counts}; units needing attention listed",
    )
    verified = summary.counts["accepted"] + summary.counts["escalated"]
    return Completed(data=report, message=f"{verified}/{summary.tasks} units verified; {counts}")
