"""Orchestration cost at scale: a classify job of 1k and 10k items through the real flow, Prefect
API and Ray actors, with the small model replaced by a NULL ENGINE that answers instantly.

The null engine exists only to isolate orchestration; no inference happens in this benchmark and
every draft is labelled "null-engine (no inference)". Prints orchestration ms per task and the
driver's peak RSS per size, and how both grow.

    .venv/bin/python benchmarks/scale.py --sizes 1000 10000
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


class PeakRSS:
    """Samples this process's resident memory every 50 ms while active."""

    def __init__(self):
        import psutil

        self._proc = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            time.sleep(0.05)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def job(n: int):
    from flows.spec import build_job

    return build_job(
        {
            "name": "scale-bench",
            "inputs": {"items": [{"id": f"i{i:05d}", "text": f"ticket {i}"} for i in range(n)]},
            "tasks": [
                {"id": "route", "kind": "classify", "choices": ["a", "b"], "max_tokens": 4, "prompt": "{{ item.text }}"}
            ],
        },
        REPO,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="slmflow-scale-"))
    os.environ.update(
        {
            "SLMFLOW_SMALL_MODEL": "null",
            "SLMFLOW_QDRANT_DIR": str(scratch / "qdrant"),
            "SLMFLOW_STATE_DIR": str(scratch / "state"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": "WARNING",
        }
    )

    from prefect import flow
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect.testing.utilities import prefect_test_harness

    from flows.cascade import UnitContext
    from flows.ledger import Ledger
    from flows.scheduler import run_dag
    from slmflow.core.records import Status
    from slmflow.core.settings import get_settings
    from workers.fleet import close_fleet, frontier_endpoint, get_fleet
    from workers.remote import RayWorkers

    settings = get_settings()

    @flow(name="scale-bench", task_runner=ThreadPoolTaskRunner(max_workers=settings.task_concurrency))
    def bench(n: int) -> tuple[float, int]:
        workers = RayWorkers(get_fleet(settings))
        ctx = UnitContext("scale-bench", "bench", workers, Ledger(settings, frontier_endpoint(settings)[1]))
        j = job(n)
        start = time.perf_counter()
        results = run_dag(j, ctx, retries=0)
        return time.perf_counter() - start, sum(r.status is Status.accepted for r in results)

    rows = []
    with prefect_test_harness(server_startup_timeout=180):
        get_fleet(settings)
        for n in args.sizes:
            with PeakRSS() as rss:
                seconds, accepted = bench(n)
            rows.append((n, seconds, accepted, rss.peak))
    close_fleet()

    print("\nNULL ENGINE (no inference): orchestration cost only")
    print(f"{'tasks':>7}{'seconds':>9}{'ms/task':>9}{'accepted':>10}{'driver peak RSS MiB':>21}")
    for n, seconds, accepted, peak in rows:
        print(f"{n:>7}{seconds:>9.1f}{1000 * seconds / n:>9.2f}{accepted:>10}{peak / 2**20:>21.0f}")
    if len(rows) > 1:
        (n0, s0, _, m0), (n1, s1, _, m1) = rows[0], rows[-1]
        print(
            f"growth {n0}->{n1} tasks ({n1 / n0:.0f}x): time {s1 / s0:.1f}x, "
            f"ms/task {(s1 / n1) / (s0 / n0):.2f}x, peak RSS {m1 / m0:.2f}x"
        )


if __name__ == "__main__":
    main()
