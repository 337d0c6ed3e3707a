"""Shared fixtures. Heavy ones (model engines, Prefect server) are session-scoped: an engine takes
~30 s to start on 2 cores, so every integration test shares one fleet and one stand-in.

State (Ray temp dir, Qdrant shards, results, service PIDs) goes to a per-session temp dir; the
converted model is shared with the user's cache so it is prepared only once per machine.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.support.ports import free_ports

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="slmflow-tests-"))


# Must happen before anything imports slmflow.core.settings (it caches the settings object).
os.environ.update(
    {
        "SLMFLOW_STATE_DIR": str(_SESSION_DIR / "state"),
        "SLMFLOW_QDRANT_DIR": str(_SESSION_DIR / "qdrant"),
        "SLMFLOW_RESULTS_DIR": str(_SESSION_DIR / "runs"),
        "SLMFLOW_STANDIN_PORT": str(free_ports(1)[0]),
        # The session's private Ray cluster exports its metrics here (workers/metrics.py), reported
        # every second rather than every ten, so tests can scrape them.
        "SLMFLOW_METRICS_PORT": str(free_ports(1)[0]),
        "RAY_metrics_report_interval_ms": "1000",
        # vLLM's engine IPC sockets, which outlive their engines, go with the session's dir, not /tmp.
        "VLLM_RPC_BASE_PATH": str(_SESSION_DIR),
        "SLMFLOW_TASK_CONCURRENCY": "16",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }
)
os.environ.pop("PREFECT_API_URL", None)
for key in (
    "SLMFLOW_FRONTIER_BASE_URL",
    "SLMFLOW_FRONTIER_MODEL",
    "SLMFLOW_FRONTIER_API_KEY",
    "RAY_ADDRESS",
    "QDRANT_URL",
):
    if key != "QDRANT_URL":  # a Qdrant server, when given, enables the server-backend tests
        os.environ.pop(key, None)

from slmflow.core.rayenv import apply_local_ray_env  # noqa: E402 - after the environment above

apply_local_ray_env()  # before any test imports Ray


@pytest.fixture(scope="session")
def settings():
    from slmflow.core.settings import get_settings

    return get_settings()


@pytest.fixture(scope="session")
def session_dir() -> Path:
    return _SESSION_DIR


@pytest.fixture(scope="session")
def prefect_api():
    """A real Prefect API server (temporary database) for the whole session; yields its URL, which
    child processes need explicitly (the harness sets it in this process's settings only)."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield PREFECT_API_URL.value()


@pytest.fixture(scope="session")
def standin(settings):
    """The local stand-in for a frontier model: a real vLLM OpenAI-compatible server."""
    from slmflow.cli import services, stack

    service = stack.ensure_frontier_standin(settings)
    yield service
    services.stop(settings.state_dir, "frontier-standin")


@pytest.fixture(scope="session")
def fleet(settings, standin):
    """Real Ray actors: a vLLM small model, the frontier client, verifier and retrieval."""
    import ray

    from workers.fleet import close_fleet, get_fleet

    fleet = get_fleet(settings)
    yield fleet
    close_fleet()
    ray.shutdown()


def pytest_terminal_summary(terminalreporter) -> None:
    """One line on what was skipped and why, also written to $SLMFLOW_SKIP_SUMMARY: the test command
    prints it last, so a missing browser or data folder cannot pass unnoticed."""
    reasons: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        reasons[reason] = reasons.get(reason, 0) + 1
    total = sum(reasons.values())
    line = (
        f"skipped {total}: " + "; ".join(f"{n} x {reason}" for reason, n in sorted(reasons.items()))
        if total
        else "skipped 0"
    )
    terminalreporter.write_line(line)
    path = os.environ.get("SLMFLOW_SKIP_SUMMARY")
    if path:
        Path(path).write_text(line + "\n")


def pytest_sessionfinish(session, exitstatus) -> None:
    """The session's folder goes when every test passed; after a failure it stays, since the
    stacks' logs and screenshots in it are what says why."""
    if exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        shutil.rmtree(_SESSION_DIR, ignore_errors=True)
