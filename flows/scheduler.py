"""Run a job's DAG over a stream of items, as concurrently as dependencies allow, in a bounded window.

Items are opened one at a time from the stream, at most `window` at once: every root task of an open
item is submitted, and each finished unit releases the units that depend on it. When all of an
item's units have settled, the item is closed and the next one opened. So the units in flight, and
the results held, are bounded by the window, not by the job.

A unit whose upstream did not produce a verified output is recorded as `blocked` and never run: an
unverified output must not feed a downstream prompt. Exactly one result per item x task
(`TaskResult.key`): a unit that still raises after its retries is recorded as `failed`, never
dropped.

How a unit runs is the caller's `submit`: as its own Prefect task run (`prefect_units`, for jobs
whose size the UI can show unit by unit) or as a plain call in a batch's thread pool
(`thread_units`, flows.batch).
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

from prefect.utilities.annotations import quote

from flows.cascade import UnitContext
from flows.retry import retrying
from flows.spec import Item, Job, TaskSpec
from flows.unit import execute_unit, run_unit
from slmflow.core.records import Status, TaskResult
from workers.metrics import units_finished


class UnitFuture(Protocol):
    def add_done_callback(self, fn: Callable[[Any], None]) -> None: ...


# Starts one unit (item, task, upstream outputs); the future settles to a TaskResult or an exception.
Submit = Callable[[Item, TaskSpec, dict[str, Any]], UnitFuture]


def run_dag(
    job: Job,
    ctx: UnitContext,
    items: Iterable[Item],
    submit: Submit,
    *,
    window: int,
    on_result: Callable[[TaskResult], None],
) -> int:
    """Run every unit of `items`; each result goes to `on_result` as it settles (in completion
    order). Returns the number of results."""
    dag = job.spec.dag
    stream = iter(items)
    open_items: dict[str, tuple[Item, dict[str, TaskResult]]] = {}
    finished: queue.Queue = queue.Queue()
    settled = 0
    counted = UnitCounters()

    def start(item: Item, task_id: str) -> None:
        task = job.spec.task(task_id)
        done = open_items[item.id][1]
        upstream = {d: done[d].output for d in task.depends_on}
        submit(item, task, upstream).add_done_callback(lambda f: finished.put((item, task_id, f)))

    def open_next() -> bool:
        item = next(stream, None)
        if item is None:
            return False
        if item.id in open_items:
            raise RuntimeError(f"item {item.id!r} opened twice")
        open_items[item.id] = (item, {})
        for task_id in dag.roots:
            start(item, task_id)
        return True

    while len(open_items) < window and open_next():
        pass
    while open_items:
        item, task_id, outcome = finished.get()
        done = open_items[item.id][1]
        if task_id in done:
            # A second report would run the unit's dependents twice; never paper over it.
            raise RuntimeError(f"unit {task_id}[{item.id}] reported twice")
        result = outcome if isinstance(outcome, TaskResult) else settle(ctx, job, item, task_id, outcome)
        if result.run_id != ctx.run_id:
            # Reused from an earlier run: it is part of this run's record now. Its cost and latency
            # stay those of the run that computed it (and its metrics were counted there).
            result = result.model_copy(update={"run_id": ctx.run_id})
        else:
            counted.add(result)
        done[task_id] = result
        on_result(result)
        settled += 1
        for child in dag.dependents[task_id]:
            deps = dag.depends_on[child]
            if not all(d in done for d in deps):
                continue
            unverified = [d for d in deps if not done[d].status.verified]
            if unverified:
                blocked = TaskResult(
                    job=ctx.job,
                    run_id=ctx.run_id,
                    item_id=item.id,
                    task_id=child,
                    kind=job.spec.task(child).kind,
                    status=Status.blocked,
                    error=f"upstream {unverified} did not produce a verified output",
                )
                finished.put((item, child, blocked))
            else:
                start(item, child)
        if len(done) == len(dag.order):
            del open_items[item.id]
            open_next()
    counted.flush()
    return settled


class UnitCounters:
    """The Prometheus counters of a run's units (workers.metrics), recorded a few hundred units at a
    time: one record per outcome instead of one per unit, which at thousands of units per second
    is a noticeable share of the flow process's core."""

    EVERY = 256

    def __init__(self) -> None:
        self.pending: list[TaskResult] = []

    def add(self, result: TaskResult) -> None:
        self.pending.append(result)
        if len(self.pending) >= self.EVERY:
            self.flush()

    def flush(self) -> None:
        units_finished(self.pending)
        self.pending = []


def settle(ctx: UnitContext, job: Job, item: Item, task_id: str, future: Any) -> TaskResult:
    """The unit's result, or an explicit `failed` one when it raised even after its retries (dead
    worker, timeout, ...)."""
    if isinstance(future, Future):
        outcome: Any = future.exception() or future.result()
    else:  # a PrefectFuture: the task's return value, or the exception it ended with
        outcome = future.result(raise_on_failure=False)
    if isinstance(outcome, TaskResult):
        return outcome
    return TaskResult(
        job=ctx.job,
        run_id=ctx.run_id,
        item_id=item.id,
        task_id=task_id,
        kind=job.spec.task(task_id).kind,
        status=Status.failed,
        error=f"{type(outcome).__name__}: {outcome}"[:1000],
    )


def prefect_units(ctx: UnitContext, retries: int) -> Submit:
    """Each unit its own Prefect task run (state, retries, and the unit cache when the run has one)."""
    # One Task for every unit, named from its parameters when each run starts: a Task per unit
    # (`with_options` per call) hashed the function's source each time, a few ms of every unit.
    unit = run_unit.with_options(retries=retries, task_run_name="{task.id}[{item.id}]")
    if ctx.cache is not None:
        unit = unit.with_options(**ctx.cache.task_options())

    def submit(item: Item, task: TaskSpec, upstream: dict[str, Any]) -> UnitFuture:
        # quote(): no future is ever passed in, and Prefect would otherwise walk (and copy) every
        # argument looking for one, twice per unit. The task gets the unwrapped values, which its
        # typed signature cannot say (as in flows.run.run_batches).
        arguments: list[Any] = [quote(ctx), quote(task), quote(item), quote(upstream)]
        return unit.submit(*arguments)

    return submit


def thread_units(ctx: UnitContext, pool: ThreadPoolExecutor, retries: int) -> Submit:
    """Each unit a plain call in `pool`, retried like a unit task run (flows.retry)."""

    def submit(item: Item, task: TaskSpec, upstream: dict[str, Any]) -> UnitFuture:
        return pool.submit(retrying, lambda: execute_unit(ctx, task, item, upstream), retries)

    return submit
