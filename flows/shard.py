"""Sharding a large job over Prefect workers: the job's items split into contiguous parts, each run by
`run_shard` as a deployment run on the shard pool (settings `shard_pool`), whose workers run one
shard at a time each (`slmflow up` with SLMFLOW_SHARD_WORKERS, or workers on other machines in
infra/). Every shard connects to the same Ray cluster and fleet, runs its items in batches, and
writes its own results file; the job's run waits for them as subflows, then merges their totals
and results into one summary and one file.

Results and checkpoints live under `results_dir`, so every worker must see the same `results_dir`
(one machine here; a shared volume across machines). A shard that ran before, for the same items
and settings, reads its batch checkpoints back (flows.cache): rerunning a job whose shard crashed
recomputes only what that shard had not verified.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import cast

from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import WorkerFilter, WorkerFilterStatus
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.deployments.runner import RunnerDeployment
from prefect.flows import EntrypointType

from flows.results import ResultsWriter
from flows.run import Plan, run_batches, unit_context, unit_threads
from flows.spec import Job, load_job
from flows.summary import RunSummary
from slmflow.core.settings import Settings, get_settings

DEPLOYMENT = "shards"
POLL_S = 1.0


# Prefect declares TaskRunner invariant in its future type, so its own thread pool does not type-check.
@flow(name="slmflow-shard", log_prints=True, task_runner=unit_threads())  # type: ignore[arg-type]
def run_shard(
    spec: str, shard: int, shards: int, run_id: str, results: str, limit: int | None = None, recompute: bool = False
) -> dict:
    """Part `shard` of `shards` of a job (by item position), in batches, as the job's run `run_id`."""
    settings = get_settings()
    job = load_job(spec, limit=limit)
    start, stop = shard_bounds(job.count, shard, shards)
    path = shard_path(Path(results), shard)
    summary = RunSummary(job=job.spec.name, run_id=run_id)
    began = time.perf_counter()
    plan = Plan.of(job, settings, shards)
    with (
        ResultsWriter(path, Path(settings.results_dir) / "labels.jsonl") as writer,
        unit_context(job, settings, run_id, recompute, batched=True) as ctx,
    ):
        for report in run_batches(job, ctx, plan, settings.batches_in_flight, writer, start, stop):
            summary.merge(report.summary)
    summary.wall_s = time.perf_counter() - began
    summary.results_path = str(path)
    summary_path(path).write_text(summary.model_dump_json())
    return summary.model_dump()


def run_shards(
    job: Job, spec: str, limit: int | None, recompute: bool, plan: Plan, run_id: str, results: Path
) -> RunSummary:
    """Run the job's shards on the shard pool and merge them into `results` and one summary."""
    settings = get_settings()
    ensure_deployment(settings)
    # Prefect types its sync-or-async helpers as possibly returning coroutines; called from sync
    # code they return the object.
    runs = [
        cast(
            FlowRun,
            run_deployment(
                f"{run_shard.name}/{DEPLOYMENT}",
                parameters={
                    "spec": str(spec),
                    "shard": k,
                    "shards": plan.shards,
                    "run_id": run_id,
                    "results": str(results),
                    "limit": limit,
                    "recompute": recompute,
                },
                flow_run_name=f"{job.spec.name} shard {k + 1}/{plan.shards}",
                timeout=0,  # start them all, then wait for all
            ),
        )
        for k in range(plan.shards)
    ]
    finished = _wait(runs)
    failed = [run.name for run in finished if not (run.state and run.state.is_completed())]
    if failed:
        raise RuntimeError(f"shards did not complete: {failed}; run the job again to resume them")
    summary = RunSummary(job=job.spec.name, run_id=run_id)
    with results.with_name(results.name + ".partial").open("wb") as out:
        for k in range(plan.shards):
            part = shard_path(results, k)
            summary.merge(RunSummary.model_validate_json(summary_path(part).read_text()))
            with part.open("rb") as lines:
                while chunk := lines.read(1 << 20):
                    out.write(chunk)
            part.unlink()
            summary_path(part).unlink()
    results.with_name(results.name + ".partial").replace(results)
    return summary


def ensure_deployment(settings: Settings) -> None:
    """The shard deployment on the shard pool (created or updated), and at least one worker there:
    without one, shard runs would wait forever."""
    deployment = run_shard.to_deployment(
        name=DEPLOYMENT, work_pool_name=settings.shard_pool, entrypoint_type=EntrypointType.MODULE_PATH
    )
    cast(RunnerDeployment, deployment).apply()
    with get_client(sync_client=True) as client:
        online = client.read_workers_for_work_pool(
            settings.shard_pool, worker_filter=WorkerFilter(status=WorkerFilterStatus(any_=["ONLINE"]))
        )
    if not online:
        raise RuntimeError(
            f"no worker is online on the shard pool '{settings.shard_pool}': start some with "
            "SLMFLOW_SHARD_WORKERS=2 slmflow up (or `prefect worker start --pool "
            f"{settings.shard_pool} --limit 1` on each machine)"
        )


def _wait(runs: list[FlowRun]) -> list[FlowRun]:
    with get_client(sync_client=True) as client:
        while True:
            current = [client.read_flow_run(run.id) for run in runs]
            if all(run.state and run.state.is_final() for run in current):
                return current
            time.sleep(POLL_S)


def shard_bounds(count: int, shard: int, shards: int) -> tuple[int, int]:
    """Items `start`..`stop` of shard `shard`: contiguous, sizes differing by at most one."""
    return count * shard // shards, count * (shard + 1) // shards


def shard_path(results: Path, shard: int) -> Path:
    return results.with_name(f"{results.stem}.shard-{shard}.jsonl")


def summary_path(shard_results: Path) -> Path:
    return shard_results.with_suffix(".summary.json")
