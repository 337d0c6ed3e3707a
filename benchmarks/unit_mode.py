"""Per-unit mode against the previous release, measured the same way on both sides.

Issue #17's per-unit target is "no slower than today": 9.95 ms per unit at 10k, which the previous
release's benchmark printed (`benchmarks/scale.py` at commit BASELINE). That benchmark ran a
NULL ENGINE classify job (no inference) through `run_dag`, one Prefect task run per unit, inside one
flow run against a throwaway Prefect server (`prefect_test_harness`) and a private Ray cluster.
Today's `benchmarks/scale.py` measures something larger (the whole `slmflow up` stack, the job flow,
results on disk, a server in another process), so its per-unit figure cannot be set against that one.

This script sets them side by side in one run, in turns, each side in a fresh process:

- `previous`: the previous release's own script on its own code, checked out into a temporary git
  worktree (it needs this repository's history);
- `current`: the same harness on this checkout's code, with what a per-unit run of the job flow
  adds inside the DAG: the unit cache (each result persisted by Prefect), the frontier's rate
  limiter, the budget, and results appended to a file.

Prints each round's ms per unit, the medians and their ratio (current / previous; below 1 is faster):

    .venv/bin/python benchmarks/unit_mode.py                 # 10k units, 2 rounds each (~18 min)
    .venv/bin/python benchmarks/unit_mode.py --size 2000 --rounds 1
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if sys.path[0] == str(Path(__file__).resolve().parent):
    sys.path[0] = str(REPO)  # run as a file: import the checkout's packages and tests.support

from tests.support.env import clean_env, null_stack_settings  # noqa: E402
from tests.support.openai_server import ScriptedOpenAIServer  # noqa: E402

BASELINE = "e429eeb"  # "Record scale and overhead figures": the release whose 9.95 ms the issue quotes
LABEL = "NULL ENGINE (no inference): orchestration cost only"
# The previous script's table row for a size: tasks, seconds, ms/task, accepted, peak RSS.
ROW = re.compile(r"^\s*(\d+)\s+([\d.]+)\s+([\d.]+)\s+(\d+)\s+(\d+)\s*$", re.M)


def current_side(n: int, scratch: Path, frontier: ScriptedOpenAIServer) -> dict:
    """The previous harness on this code: one flow run that runs the DAG as a small job does
    (flows.run.run_units: a Prefect task run per unit, results appended to a file), timed around it."""
    os.environ.update(
        {
            # The frontier is checked before the run and never called: every null draft is accepted.
            **null_stack_settings(scratch, frontier),
            "PREFECT_LOGGING_LEVEL": "WARNING",
        }
    )
    from prefect import flow
    from prefect.testing.utilities import prefect_test_harness

    from flows.results import ResultsWriter
    from flows.run import results_path, run_units, unit_context, unit_threads
    from flows.spec import build_job
    from slmflow.core.records import Status
    from slmflow.core.settings import get_settings
    from workers.fleet import close_fleet, get_fleet

    settings = get_settings()
    items = scratch / "items.jsonl"
    items.write_text("".join(json.dumps({"id": f"i{i:05d}", "text": f"ticket {i}"}) + "\n" for i in range(n)))
    spec = {
        "name": "unit-mode-bench",
        "inputs": {"path": items.name},
        "tasks": [
            {"id": "route", "kind": "classify", "choices": ["a", "b"], "max_tokens": 4, "prompt": "{{ item.text }}"}
        ],
    }

    @flow(name="unit-mode-bench", task_runner=unit_threads())
    def bench() -> tuple[float, int]:
        job = build_job(spec, scratch)
        writer = ResultsWriter(results_path(settings, job, "bench"), scratch / "labels.jsonl")
        with writer, unit_context(job, settings, "bench", recompute=True, batched=False) as ctx:
            start = time.perf_counter()
            results = run_units(job, ctx, settings.task_retries, writer)
            seconds = time.perf_counter() - start
        return seconds, sum(r.status is Status.accepted for r in results)

    with prefect_test_harness(server_startup_timeout=180):
        get_fleet(settings)
        seconds, accepted = bench()
    close_fleet()
    return {"seconds": seconds, "accepted": accepted}


def run_current(n: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="slmflow-unit-mode-") as scratch:
        proc = subprocess.run(
            [sys.executable, __file__, "--side-current", str(n), "--scratch", scratch],
            env=clean_env(),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=3600,
        )
    if proc.returncode:
        raise SystemExit(f"current side failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_previous(worktree: Path, n: int) -> dict:
    """The previous release's script, importing its own code (PYTHONPATH) rather than the editable
    install. It leaves its scratch folder behind, so its temporary files go under ours."""
    proc = subprocess.run(
        [sys.executable, "benchmarks/scale.py", "--sizes", str(n)],
        env=clean_env(PYTHONPATH=str(worktree), TMPDIR=str(worktree.parent)),
        cwd=worktree,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    out = parse_previous(proc.stdout, n)
    if proc.returncode or out is None:
        raise SystemExit(f"previous side failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return out


def parse_previous(stdout: str, n: int) -> dict | None:
    """Seconds and accepted units from the previous script's table row for `n` tasks."""
    rows = {int(m[1]): m for m in ROW.finditer(stdout)}
    return {"seconds": float(rows[n][2]), "accepted": int(rows[n][4])} if n in rows else None


def table(times: dict[str, list[float]], n: int, baseline: str) -> str:
    """`times`: ms per unit of each round, per side."""
    previous = statistics.median(times["previous"])
    rounds = len(times["previous"])
    lines = [
        f"{LABEL}. One Prefect task run per unit, {n:,} units, {rounds} rounds of each side, in turns; the "
        "same harness on both sides (one flow run, a throwaway Prefect server, a private Ray cluster).",
        "",
        "| code | ms/unit, median (min-max) | units/s | vs previous |",
        "|---|---:|---:|---:|",
    ]
    for side, label in (("previous", f"previous release ({baseline})"), ("current", "this checkout")):
        median = statistics.median(times[side])
        spread = f"{min(times[side]):.2f}-{max(times[side]):.2f}"
        lines.append(f"| {label} | {median:.2f} ({spread}) | {1000 / median:.0f} | **{median / previous:.2f}** |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=10_000, help="items (= units: one task)")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each side, in turns")
    parser.add_argument("--baseline", default=BASELINE, help="the commit to compare with")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file (benchmarks/report.py)")
    parser.add_argument("--side-current", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--scratch", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side_current:
        with ScriptedOpenAIServer(lambda request: json.dumps({"label": "a"})) as frontier:
            print(json.dumps(current_side(args.side_current, args.scratch, frontier)))
        return

    n = args.size
    times: dict[str, list[float]] = {"previous": [], "current": []}
    with tempfile.TemporaryDirectory(prefix="slmflow-baseline-") as tmp:
        worktree = Path(tmp) / "previous"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(worktree), args.baseline], cwd=REPO, check=True)
        try:
            for r in range(args.rounds):
                for side in ("previous", "current"):
                    began = time.monotonic()
                    out = run_previous(worktree, n) if side == "previous" else run_current(n)
                    if out["accepted"] != n:
                        raise SystemExit(f"{side}: {out['accepted']} of {n} units accepted (the null engine's: all)")
                    times[side].append(1000 * out["seconds"] / n)
                    took = time.monotonic() - began
                    print(
                        f"round {r + 1}/{args.rounds} {side:>8}: {times[side][-1]:6.2f} ms/unit ({took:.0f} s)",
                        flush=True,
                    )
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=REPO, check=False)

    report = table(times, n, args.baseline)
    print(f"\n{report}\n")
    previous, current = (statistics.median(times[s]) for s in ("previous", "current"))
    print(f"unit_mode size={n} previous_ms={previous:.2f} current_ms={current:.2f} ratio={current / previous:.3f}")
    if args.markdown:
        args.markdown.write_text(report + "\n")


if __name__ == "__main__":
    main()
