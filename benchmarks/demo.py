"""The demo job as `make demo` runs it, timed: the shipped support-inbox job on the bundled model, with
the local stand-in for a frontier model. Prints (and with --markdown writes) the per-task summary the
run printed, and the wall time of the whole command (Prefect server, Ray, both engines, the run).
It runs in a state folder and on a Prefect port of its own, and stops what it started afterwards.

    .venv/bin/python benchmarks/demo.py
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=None, help="only the first N tickets")
    parser.add_argument("--markdown", type=Path, help="also write the summary as markdown to this file")
    args = parser.parse_args()
    slmflow = [sys.executable, "-c", "from slmflow.cli.app import app; app()"]
    state = tempfile.mkdtemp(prefix="slmflow-demo-bench-")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "RAY_"))},
        "SLMFLOW_STATE_DIR": state,
        "SLMFLOW_PREFECT_PORT": str(free_port()),
    }
    started = time.monotonic()
    try:
        run = subprocess.run(
            [*slmflow, "demo", *(["--limit", str(args.limit)] if args.limit else [])],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
        )
        wall = time.monotonic() - started
    finally:
        subprocess.run([*slmflow, "down"], cwd=REPO, env=env, capture_output=True)
    if run.returncode:
        raise SystemExit(f"slmflow demo failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
    lines = run.stdout.splitlines()
    first = next(i for i, line in enumerate(lines) if "— per task" in line)
    last = next(i for i in range(first, len(lines)) if lines[i].startswith("frontier:"))
    summary = "\n".join(line.rstrip() for line in lines[first : last + 1])
    print(summary)
    print(f"`slmflow demo` wall time, everything started from scratch: {wall:.0f} s")
    if args.markdown:
        args.markdown.write_text(f"```\n{summary}\n```\n\n`slmflow demo`, start to end: {wall:.0f} s.\n")


if __name__ == "__main__":
    main()
