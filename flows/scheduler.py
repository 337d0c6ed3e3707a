"""Run a job's DAG over all items as Prefect task runs, as concurrently as dependencies allow.

Every root task of every item is submitted at once; each finished unit releases the units that
depend on it. A unit whose upstream did not produce a verified output is recorded as `blocked`
and never run: an unverified output must not feed a downstream prompt.

Exactly one result per item x task (`TaskResult.key`): a failing unit is retried by Prefect inside
its own task run, and a unit that still raises is recorded as `failed`, never dropped. With a
`UnitCache` on the context, a unit already verified by an earlier run is read back, not run.
"""

from __future__ import annotations

import queue
from collections.abc import Callable

from flows.cascade import UnitContext
from flows.spec import Item, Job
from flows.unit import run_unit
from slmflow.core.records import Status, TaskResult


def run_dag(
    job: Job, ctx: UnitContext, *, retries: int = 2, on_result: Callable[[TaskResult], None] | None = None
) -> list[TaskResult]:
    dag = job.spec.dag
    done: dict[tuple[str, str], TaskResult] = {}
    finished: queue.Queue = queue.Queue()
    unit = run_unit.with_options(retries=retries)
    if ctx.cache is not None:
        unit = unit.with_options(**ctx.cache.task_options())

    def submit(item: Item, task_id: str) -> None:
        task = job.spec.task(task_id)
        upstream = {d: done[(item.id, d)].output for d in task.depends_on}
        future = unit.with_options(task_run_name=f"{task_id}[{item.id}]").submit(ctx, task, item, upstream)
        future.add_done_callback(lambda f: finished.put((item, task_id, f)))

    def settle(item: Item, task_id: str, future) -> TaskResult:
        outcome = future.result(raise_on_failure=False)
        if isinstance(outcome, TaskResult):
            return outcome
        # The unit raised even after its retries (dead worker, timeout, ...): say so explicitly.
        task = job.spec.task(task_id)
        return TaskResult(
            job=ctx.job,
            run_id=ctx.run_id,
            item_id=item.id,
            task_id=task_id,
            kind=task.kind,
            status=Status.failed,
            error=f"{type(outcome).__name__}: {outcome}"[:1000],
        )

    for item in job.items:
        for task_id in dag.roots:
            submit(item, task_id)

    total = len(job.items) * len(dag.order)
    while len(done) < total:
        item, task_id, outcome = finished.get()
        if (item.id, task_id) in done:
            # A second report would run the unit's dependents twice; never paper over it.
            raise RuntimeError(f"unit {task_id}[{item.id}] reported twice")
        result = outcome if isinstance(outcome, TaskResult) else settle(item, task_id, outcome)
        if result.run_id != ctx.run_id:
            # Reused from an earlier run's cache: it is part of this run's record now. Its cost and
            # latency stay those of the run that computed it.
            result = result.model_copy(update={"run_id": ctx.run_id})
        done[(item.id, task_id)] = result
        if on_result:
            on_result(result)
        for child in dag.dependents[task_id]:
            deps = dag.depends_on[child]
            if not all((item.id, d) in done for d in deps):
                continue
            unverified = [d for d in deps if not done[(item.id, d)].status.verified]
            if unverified:
                task = job.spec.task(child)
                finished.put(
                    (
                        item,
                        child,
                        TaskResult(
                            job=ctx.job,
                            run_id=ctx.run_id,
                            item_id=item.id,
                            task_id=child,
                            kind=task.kind,
                            status=Status.blocked,
                            error=f"upstream {unverified} did not produce a verified output",
                        ),
                    )
                )
            else:
                submit(item, child)
    return [done[(item.id, t)] for item in job.items for t in dag.order]
