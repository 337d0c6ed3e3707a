"""Not a test module: the job driver that tests/integration/test_reliability*.py run in a fresh
interpreter, so that each scenario gets its own private Ray cluster, null-engine fleet and settings
(the session's own fleet, when a slow test started one, holds the only engine slot), and so that a
test can SIGKILL the whole flow process.

    python -m tests.support.reliability_driver job SPEC --out FIGURES.json [--kill-small-after N] [--shards K]
        [--metrics URL]
    python -m tests.support.reliability_driver load SPEC SPEC --out FIGURES.json

Everything is configured by the environment the test passes (SLMFLOW_SMALL_MODEL=null,
SLMFLOW_NULL_DELAY_S, PREFECT_API_URL, ...). The driver runs the real flow (`flows.job.run_job`)
and writes what it measured to FIGURES.json; the test makes the assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any


def _small_actor():
    from slmflow.core.settings import get_settings
    from workers.fleet import get_fleet

    (actor,) = get_fleet(get_settings()).small_actors
    return actor


def _stats(actor, timeout: float = 10.0) -> dict:
    import ray

    return ray.get(actor.stats.remote(), timeout=timeout)


class WorkerKiller(threading.Thread):
    """Once the small-model actor has served `after` requests and has some in flight, SIGKILL its
    process (found by PID, as an operator would), then time how long until the restarted actor
    answers again. Coalesced calls reach the actor in waves, so between two waves it can be idle:
    the kill waits for a wave, since a worker that dies idle tests nothing."""

    def __init__(self, after: int):
        super().__init__(daemon=True)
        self.after = after
        self.figures: dict[str, Any] = {}
        self.flow_done = threading.Event()  # a flow that ended early must not leave this waiting

    def run(self) -> None:
        import ray

        actor = _small_actor()
        stats = _stats(actor)
        while stats["served"] < self.after or not stats["in_flight"]:
            if self.flow_done.is_set():
                return
            time.sleep(0.02)
            stats = _stats(actor)
        os.kill(stats["pid"], signal.SIGKILL)
        killed_at = time.monotonic()
        self.figures.update(
            killed_pid=stats["pid"], served_before_kill=stats["served"], in_flight_at_kill=stats["in_flight"]
        )
        while time.monotonic() - killed_at < 120:
            try:
                now = _stats(actor, timeout=5)
            except (ray.exceptions.RayError, TimeoutError):
                time.sleep(0.05)  # the dying or restarting actor: ask again
                continue
            if now["pid"] != stats["pid"]:
                self.figures.update(new_pid=now["pid"], recovery_s=time.monotonic() - killed_at)
                return
            time.sleep(0.05)


class Sampler(threading.Thread):
    """Every `period` s: this process's resident memory and the small-model actor's requests in
    flight. The stats call is itself an actor call, so on a saturated actor it waits for a slot."""

    def __init__(self, period: float = 0.1):
        super().__init__(daemon=True)
        import psutil

        self._proc = psutil.Process()
        self.period = period
        self.rss_start = self._proc.memory_info().rss
        self.rss_peak = self.rss_start
        self.in_flight: list[int] = []
        self._done = threading.Event()

    def run(self) -> None:
        actor = _small_actor()
        while not self._done.is_set():
            self.rss_peak = max(self.rss_peak, self._proc.memory_info().rss)
            self.in_flight.append(_stats(actor)["in_flight"])
            self._done.wait(self.period)

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=30)


def _run(spec: str, record: dict[str, Any], shards: int | None = None) -> None:
    from flows.job import run_job

    start = time.monotonic()
    state = run_job(spec, shards=shards, return_state=True)
    record.update(
        state=state.type.value,
        message=state.message,
        flow_run_id=str(state.state_details.flow_run_id),
        wall_s=time.monotonic() - start,
    )
    if state.is_completed():
        record["summary"] = state.result()


def job(args) -> int:
    from slmflow.core.settings import get_settings
    from tests.support.prefect_api import settled, task_runs
    from workers.fleet import fleet_status

    started = time.monotonic()
    _small_actor()  # start the fleet before the flow, so the killer can find the actor
    figures: dict[str, Any] = {"fleet_ready_s": time.monotonic() - started}
    killer = WorkerKiller(args.kill_small_after) if args.kill_small_after else None
    if killer:
        killer.start()
    _run(args.spec, figures, args.shards)
    if killer:
        killer.flow_done.set()
        killer.join(timeout=120)
        figures["kill"] = killer.figures
    figures["fleet"] = fleet_status(get_settings())
    if "summary" in figures and not args.shards:
        # Blocked units never become task runs. Task run states reach the API as events, recorded
        # asynchronously: wait (boundedly) until every run has its final state. A batched run has
        # one task run per batch, not per unit.
        expected = figures["summary"]["tasks"] - figures["summary"]["counts"].get("blocked", 0)
        deadline = time.monotonic() + 30
        while True:
            runs = task_runs(figures["flow_run_id"])
            batched = any(r.name.startswith("batch ") for r in runs)
            if settled(runs, len(runs) if batched else expected) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        figures["task_runs"] = [
            {"name": r.name, "run_count": r.run_count, "state": r.state.name if r.state else None} for r in runs
        ]
        if args.metrics:
            figures["metrics"] = _scrape(args.metrics, expected)
    Path(args.out).write_text(json.dumps(figures, indent=1, default=str))
    return 0 if figures["state"] == "COMPLETED" else 2


def _scrape(url: str, units: int, timeout_s: float = 30) -> str:
    """Ray's Prometheus text once it counts `units` finished units (metrics are reported every
    RAY_metrics_report_interval_ms), or whatever it holds at the deadline."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    deadline = time.monotonic() + timeout_s
    while True:
        text = urllib.request.urlopen(url, timeout=10).read().decode()
        counted = sum(
            s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == "ray_slmflow_units_total"
        )
        if counted >= units or time.monotonic() > deadline:
            return text
        time.sleep(0.5)


def load(args) -> int:
    """Several flow runs at once in this process, sharing one fleet."""
    from slmflow.core.settings import get_settings
    from workers.fleet import fleet_status

    _small_actor()
    # LiteLLM's price map and tokenizers (~150 MiB) load once per process, at a run's first price
    # or token count: a fixed cost, not growth with the units queued, so it is paid before the start.
    from slmflow.core.prices import count_tokens

    count_tokens("gpt-4o", {}, text="warm up")
    sampler = Sampler()
    sampler.start()
    records: list[dict[str, Any]] = [{} for _ in args.specs]
    threads = [threading.Thread(target=_run, args=(spec, rec), daemon=True) for spec, rec in zip(args.specs, records)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=args.timeout)
    wall = time.monotonic() - start
    sampler.stop()
    figures = {
        "runs": records,
        "wall_s": wall,
        "rss_start": sampler.rss_start,
        "rss_peak": sampler.rss_peak,
        "in_flight_samples": sampler.in_flight,
        "fleet": fleet_status(get_settings()),
    }
    Path(args.out).write_text(json.dumps(figures, indent=1, default=str))
    return 0 if all(r.get("state") == "COMPLETED" for r in records) else 2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("job")
    one.add_argument("spec")
    one.add_argument("--out", required=True)
    one.add_argument("--kill-small-after", type=int, default=0)
    one.add_argument("--shards", type=int, default=None, help="split the job over the shard pool")
    one.add_argument("--metrics", help="Ray's metrics URL to scrape after the run")
    many = commands.add_parser("load")
    many.add_argument("specs", nargs="+")
    many.add_argument("--out", required=True)
    many.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    code = {"job": job, "load": load}[args.command](args)
    import ray

    ray.shutdown()  # stops the private cluster this process started
    sys.stdout.flush()
    # Skip the rest of interpreter teardown (Prefect's background workers can take a while).
    os._exit(code)


if __name__ == "__main__":
    main()
