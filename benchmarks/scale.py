"""Orchestration cost at scale, with a NULL ENGINE: no inference happens in this benchmark, every
draft is labelled "null-engine (no inference)", and what is measured is what slmflow adds around
the models (Prefect task runs, Ray actor calls, the verifier, results on disk).

For each database a Prefect server runs on (SQLite, the default; PostgreSQL, as production runs
it) the real stack is started once (`slmflow up`: Prefect server, Ray head, the fleet as detached
actors on the null engine, a worker on the `local` pool and two on the shard pool). Then each job (a
one-task classify job of N items read from a JSONL file) runs in a fresh driver process, in one of:

- `unit`: one Prefect task run per unit (what small jobs do);
- `batched`, workers=1: one task run per batch of items, in the driver;
- `batched`, workers=2: the job split in two shards, run on the shard pool's two workers.

Measured per run: orchestration ms per unit and units/s (the flow's own wall time, item validation
excluded and reported apart), the driver's peak RSS (for a sharded run, the largest of the driver
and the shard processes), the rows the Prefect database gained (task runs, flow runs, their
states, artifacts, logs, events), and where the CPU went, in ms per unit: the flow's processes
(driver and shards), the fleet's actors and the Prefect server. Besides the table, one
machine-readable line per measurement:

    scale size=N mode=unit|batched workers=K db=sqlite|postgres ms_per_unit=X units_per_s=Y rss_mib=Z db_rows=R

    nice -n 10 .venv/bin/python benchmarks/scale.py                         # 10k, 100k, 1M
    .venv/bin/python benchmarks/scale.py --sizes 10000 --dbs sqlite         # a quick look
    .venv/bin/python benchmarks/scale.py --sizes 1000000 --dbs postgres --workers 2   # one million-unit run

A per-unit run costs ~20 ms per unit here, so `unit` mode runs at sizes up to --unit-max (10k).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
if sys.path[0] == str(Path(__file__).resolve().parent):
    sys.path[0] = str(REPO)  # run as a file: import the checkout's packages and tests.support

from tests.support.env import clean_env, null_stack_settings  # noqa: E402
from tests.support.openai_server import ScriptedOpenAIServer  # noqa: E402
from tests.support.ports import free_ports, port_block  # noqa: E402
from tests.support.postgres import count_rows, postgres_server  # noqa: E402

TABLES = ["flow_run", "flow_run_state", "task_run", "task_run_state", "artifact", "log", "events"]
LABEL = "NULL ENGINE (no inference): orchestration cost only"


@contextmanager
def stack(db: str, root: Path, frontier: ScriptedOpenAIServer) -> Iterator[dict[str, str]]:
    """`slmflow up` on the null engine, with the Prefect server on `db`; yields the environment."""
    (prefect_port,) = free_ports(1)
    env = {
        **clean_env(),
        "PREFECT_LOGGING_LEVEL": "WARNING",
        **null_stack_settings(root, frontier),
        "SLMFLOW_PREFECT_PORT": str(prefect_port),
        "SLMFLOW_RAY_PORT": str(port_block(3, range(30000, 33000, 13))),
        "SLMFLOW_WORKER_HEALTH_PORT": str(port_block(3, range(33000, 36000, 11))),
        "SLMFLOW_SHARD_WORKERS": "2",
    }
    with postgres_server() if db == "postgres" else nullcontext() as url:
        if url:
            env["SLMFLOW_PREFECT_DATABASE_URL"] = url
        try:
            up = _slmflow(env, "up")
            if up.returncode:  # `down` still stops what it did start
                raise SystemExit(f"slmflow up failed:\n{up.stdout}\n{up.stderr}")
            yield {**env, "PREFECT_API_URL": f"http://127.0.0.1:{prefect_port}/api", "DB_URL": url or ""}
        finally:
            _slmflow(env, "down")


def _slmflow(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", "from slmflow.cli.app import app; app()", *args]
    return subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=900)


def db_rows(env: dict[str, str]) -> int:
    if env["DB_URL"]:
        return sum(count_rows(env["DB_URL"], TABLES).values())
    (db,) = Path(env["SLMFLOW_STATE_DIR"]).glob("prefect-home/*.db")
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return sum(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES)


def settled_rows(env: dict[str, str], quiet_s: float = 3.0, limit_s: float = 600.0) -> int:
    """The row count once the server has stopped writing: it records task-run states from events,
    asynchronously, so a run's rows keep arriving after the run returns (and would be counted in,
    and slow down, the next run)."""
    deadline = time.monotonic() + limit_s
    last, since = db_rows(env), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = db_rows(env)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            break
    return last


def write_job(root: Path, n: int, mode: str, workers: int) -> Path:
    items = root / f"items-{n}.jsonl"
    if not items.exists():
        with items.open("w") as f:
            for i in range(n):
                f.write(json.dumps({"id": f"i{i:07d}", "text": f"ticket {i}"}) + "\n")
    spec = root / f"scale-{n}-{mode}-{workers}.yaml"
    threshold = n + 1 if mode == "unit" else 1  # force the mode whatever the size
    spec.write_text(
        json.dumps(
            {
                # A job of its own per measurement: the unit cache is keyed by the job, so a run
                # never reuses the results of the measurement before it.
                "name": f"scale-{n}-{mode}-x{workers}",
                "inputs": {"path": items.name},
                "execution": {"batch_above": threshold},
                "tasks": [{"id": "route", "kind": "classify", "choices": ["a", "b"], "prompt": "{{ item.text }}"}],
            }
        )
    )
    return spec


class FlowProcesses(threading.Thread):
    """The flow's processes (the given trees' Python processes, Ray workers aside), sampled every
    0.2 s: the largest resident memory of any, and the CPU seconds of all (a process that exits
    counts as of its last sample)."""

    def __init__(self, roots: list[int]):
        super().__init__(daemon=True)
        self.roots = roots
        self.peak = 0
        self.cpu: dict[int, float] = {}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            for root in self.roots:
                try:
                    tree = [psutil.Process(root), *psutil.Process(root).children(recursive=True)]
                except psutil.NoSuchProcess:
                    continue
                for proc in tree:
                    try:
                        if "python" in proc.name() and "ray::" not in " ".join(proc.cmdline()[:1]):
                            self.peak = max(self.peak, proc.memory_info().rss)
                            self.cpu[proc.pid] = cpu_s(proc)
                    except psutil.Error:
                        pass
            self.done.wait(0.2)


def cpu_s(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


class StackCPU:
    """CPU seconds the stack's long-lived processes use between `start()` and `stop()`: the fleet's
    actors (`ray::...Worker`) and the Prefect server."""

    def __init__(self, env: dict[str, str]):
        state = Path(env["SLMFLOW_STATE_DIR"])
        server = psutil.Process(json.loads((state / "prefect-server.json").read_text())["pid"])
        actors = [
            p
            for p in psutil.process_iter(["cmdline"])
            if (p.info["cmdline"] or [""])[0].startswith("ray::") and p.info["cmdline"][0].endswith("Worker")
        ]
        self.groups = {"fleet": actors, "server": [server, *server.children(recursive=True)]}
        self.used: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        return {name: sum(cpu_s(p) for p in procs if p.is_running()) for name, procs in self.groups.items()}

    def start(self) -> None:
        self._began = self._now()

    def stop(self) -> None:
        self.used = {name: s - self._began[name] for name, s in self._now().items()}


def shard_workers(env: dict[str, str]) -> list[int]:
    return [json.loads(p.read_text())["pid"] for p in Path(env["SLMFLOW_STATE_DIR"]).glob("shard-worker-*.json")]


def measure(env: dict[str, str], root: Path, n: int, mode: str, workers: int) -> dict:
    spec = write_job(root, n, mode, workers)
    out = root / f"figures-{n}-{mode}-{workers}.json"
    before = settled_rows(env)
    args = ["job", str(spec), "--out", str(out)] + (["--shards", str(workers)] if workers > 1 else [])
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.reliability_driver", *args],
        env={k: v for k, v in env.items() if k != "DB_URL"},
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=open(root / f"driver-{n}-{mode}-{workers}.log", "w"),  # noqa: SIM115 - closed with the process
    )
    flow = FlowProcesses([proc.pid, *(shard_workers(env) if workers > 1 else [])])
    stack = StackCPU(env)
    flow.start()
    stack.start()
    proc.wait()
    stack.stop()
    flow.done.set()
    flow.join()
    total_s = time.perf_counter() - started
    figures = json.loads(out.read_text())
    if figures.get("state") != "COMPLETED":
        raise SystemExit(f"{n} {mode} x{workers}: {figures.get('state')} {figures.get('message')}")
    summary = figures["summary"]
    assert summary["tasks"] == n and summary["counts"]["accepted"] == n
    wall = summary["wall_s"]
    return {
        "size": n,
        "mode": mode,
        "workers": workers,
        "db": "postgres" if env["DB_URL"] else "sqlite",
        "ms_per_unit": 1000 * wall / n,
        "units_per_s": n / wall,
        "rss_mib": flow.peak / 2**20,
        # The flow's CPU includes its setup (imports, fleet lookup, reading the items), as its
        # processes spend it; the fleet's and the server's are the run's alone.
        "cpu_ms_per_unit": {
            "flow": 1000 * sum(flow.cpu.values()) / n,
            **{name: 1000 * s / n for name, s in stack.used.items()},
        },
        "db_rows": settled_rows(env) - before,
        "setup_s": total_s - wall,  # process start, fleet lookup, reading and checking every item
    }


def growth(rows: list[dict], key: str) -> str:
    """Exponent b of key ∝ size^b, fitted by least squares on log-log (1: linear in size)."""
    if len(rows) < 2:
        return "-"
    xs, ys = [math.log(r["size"]) for r in rows], [math.log(max(r[key], 1e-9)) for r in rows]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return f"{b:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--dbs", nargs="+", default=["sqlite", "postgres"], choices=["sqlite", "postgres"])
    parser.add_argument("--unit-max", type=int, default=10_000, help="largest size run in per-unit mode")
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[1, 2],
        choices=[1, 2],
        help="batched runs: 1 (the driver), 2 (shards)",
    )
    parser.add_argument("--markdown", type=Path, help="also write the tables as markdown to this file")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="slmscale-"))
    rows: list[dict] = []
    try:
        with ScriptedOpenAIServer(lambda request: json.dumps({"label": "a"})) as frontier:
            for db in args.dbs:
                with stack(db, root / db, frontier) as env:
                    for n in args.sizes:
                        plan = [("unit", 1)] if n <= args.unit_max else []
                        for mode, workers in [*plan, *(("batched", k) for k in args.workers)]:
                            row = measure(env, root, n, mode, workers)
                            rows.append(row)
                            print(
                                f"scale size={n} mode={mode} workers={workers} db={row['db']} "
                                f"ms_per_unit={row['ms_per_unit']:.3f} units_per_s={row['units_per_s']:.0f} "
                                f"rss_mib={row['rss_mib']:.0f} db_rows={row['db_rows']}",
                                flush=True,
                            )
    except BaseException:
        print(f"the drivers' logs and the run's files are kept in {root}", file=sys.stderr)
        raise
    shutil.rmtree(root)  # items, results and checkpoints: large at a million units
    print(table(rows))
    if args.markdown:
        args.markdown.write_text(table(rows) + "\n")


def table(rows: list[dict]) -> str:
    lines = [
        f"{LABEL}.",
        "",
        "| db | mode | workers | units | ms/unit | units/s | peak RSS MiB | DB rows written | setup s "
        "| CPU ms/unit: flow / fleet / server |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        cpu = r["cpu_ms_per_unit"]
        lines.append(
            f"| {r['db']} | {r['mode']} | {r['workers']} | {r['size']:,} | {r['ms_per_unit']:.2f} | "
            f"{r['units_per_s']:,.0f} | {r['rss_mib']:.0f} | {r['db_rows']:,} | {r['setup_s']:.0f} | "
            f"{cpu['flow']:.2f} / {cpu['fleet']:.2f} / {cpu['server']:.2f} |"
        )
    lines += ["", "Growth with size (exponent b of value ∝ units^b; 1 = linear, 0 = flat):", ""]
    lines += ["| db | mode | workers | time | ms/unit | peak RSS | DB rows |", "|---|---|---:|---:|---:|---:|---:|"]
    groups = sorted({(r["db"], r["mode"], r["workers"]) for r in rows})
    for db, mode, workers in groups:
        series = [r for r in rows if (r["db"], r["mode"], r["workers"]) == (db, mode, workers)]
        for r in series:
            r["wall"] = r["ms_per_unit"] * r["size"]
        lines.append(
            f"| {db} | {mode} | {workers} | {growth(series, 'wall')} | {growth(series, 'ms_per_unit')} | "
            f"{growth(series, 'rss_mib')} | {growth(series, 'db_rows')} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
