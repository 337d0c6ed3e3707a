"""The long-lived stack as a user drives it: `slmflow up` (which deploys the shipped jobs), a custom run clicked in
the Prefect UI (v2) in headless Chromium, `slmflow status`, `slmflow down`.

Runs the CLI in subprocesses with its own ports and state dir, so it shares nothing with the rest
of the session except the frontier stand-in, which it uses as its "real" frontier endpoint.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from slmflow.core.state import service_processes
from tests.support.ports import free_ports, port_block

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="module")
def stack_env(session_dir, standin):
    prefect_port, health_port, metrics_port = free_ports(3)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "RAY_"))}
    env.update(
        {
            "SLMFLOW_STATE_DIR": str(session_dir / "stack-state"),
            "SLMFLOW_QDRANT_DIR": str(session_dir / "stack-qdrant"),
            "SLMFLOW_RESULTS_DIR": str(session_dir / "stack-runs"),
            "SLMFLOW_PREFECT_PORT": str(prefect_port),
            "SLMFLOW_RAY_PORT": str(port_block(3)),
            "SLMFLOW_WORKER_HEALTH_PORT": str(health_port),
            "SLMFLOW_METRICS_PORT": str(metrics_port),
            # The session's stand-in plays the frontier, so `up` starts no second one.
            "SLMFLOW_FRONTIER_BASE_URL": standin.url,
            "SLMFLOW_FRONTIER_MODEL": "frontier-standin",
            "SLMFLOW_FRONTIER_API_KEY": "sk-ui-test-not-a-real-key",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
        }
    )
    return env


def _slmflow(env, *args, timeout=600):
    return subprocess.run(
        [str(Path(sys.executable).parent / "slmflow"), *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _services(env) -> dict[str, dict]:
    state = Path(env["SLMFLOW_STATE_DIR"])
    return {p.stem: json.loads(p.read_text()) for p in state.glob("*.json")}


def _listening(pgids: set[int]) -> list[tuple[str, int, str]]:
    """(address, port, process name) of every TCP listener owned by those process groups."""
    found = []
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status != psutil.CONN_LISTEN or not conn.pid:
            continue
        try:
            if os.getpgid(conn.pid) in pgids:
                found.append((conn.laddr.ip, conn.laddr.port, psutil.Process(conn.pid).name()))
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return found


def _api(env, path, body=None):
    import httpx

    url = f"http://127.0.0.1:{env['SLMFLOW_PREFECT_PORT']}/api{path}"
    return (httpx.post(url, json=body or {}) if body is not None else httpx.get(url)).json()


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed")
def test_up_deploy_click_run_status_down(stack_env, session_dir):
    env = stack_env
    shots = session_dir / "screenshots"
    shots.mkdir(exist_ok=True)

    started: set[int] = set()
    try:
        # Inside the try: an `up` that fails halfway has started services that `down` must stop.
        up = _slmflow(env, "up")
        assert up.returncode == 0, up.stdout + up.stderr
        services = _services(env)
        assert {"prefect-server", "ray-head", "prefect-worker"} <= set(services)
        assert "frontier-standin" not in services  # a frontier was configured
        pgids = {s["pid"] for s in services.values()}

        # Loopback only: every socket of every process `up` started.
        listeners = _listening(pgids)
        assert listeners, "found no listening sockets at all"
        exposed = [sock for sock in listeners if sock[0] not in ("127.0.0.1", "::ffff:127.0.0.1", "::1")]
        assert not exposed, f"listening beyond loopback: {exposed}"

        # `up` registered one deployment per shipped job, with its typed form.
        (deployment,) = _api(env, "/deployments/filter", {"deployments": {"name": {"any_": ["support-inbox"]}}})

        from playwright.sync_api import sync_playwright

        ui = f"http://127.0.0.1:{env['SLMFLOW_PREFECT_PORT']}/v2/deployments/deployment/{deployment['id']}"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(ui, wait_until="networkidle", timeout=120_000)
            page.screenshot(path=str(shots / "1-deployment.png"))
            page.get_by_role("button", name="Run", exact=True).click()
            page.get_by_role("menuitem", name="Custom run").click()
            # limit: None -> an integer. limit is the form's first optional integer (shards and the
            # budget's counts follow), so its type tab is the first "int" tab.
            page.get_by_role("tab", name=re.compile("^int$", re.I)).first.click()
            limit = page.locator("input[type=number]").first
            limit.fill("2")
            limit.press("Tab")  # commit the value to the form before submitting
            page.screenshot(path=str(shots / "2-custom-run.png"))

            def deployment_runs():
                return _api(env, "/flow_runs/filter", {"flow_runs": {"deployment_id": {"any_": [deployment["id"]]}}})

            # The UI's confirmation toast is transient; the API says whether the run exists.
            for _ in range(2):
                page.get_by_role("button", name="Submit").click()
                deadline = time.monotonic() + 30
                while not deployment_runs() and time.monotonic() < deadline:
                    time.sleep(1)
                if deployment_runs():
                    break

            runs = []
            deadline = time.monotonic() + 420
            while time.monotonic() < deadline:
                runs = deployment_runs()
                if runs and runs[0]["state_type"] in ("COMPLETED", "FAILED", "CRASHED"):
                    break
                time.sleep(3)
            (run,) = runs
            assert run["parameters"]["limit"] == 2  # the parameter changed in the UI
            assert run["state_type"] == "COMPLETED", run["state"]

            page.goto(
                f"http://127.0.0.1:{env['SLMFLOW_PREFECT_PORT']}/v2/runs/flow-run/{run['id']}", wait_until="networkidle"
            )
            page.get_by_role("tab", name="Artifacts").click()
            page.get_by_text("support-inbox-ledger").first.wait_for(timeout=30_000)
            page.screenshot(path=str(shots / "3-run-artifacts.png"), full_page=True)
            page.get_by_text("support-inbox-summary").first.click()
            # The rendered markdown table, not just the raw text behind it.
            page.get_by_role("cell", name=re.compile(r"^\$\d")).first.wait_for(timeout=30_000)
            page.screenshot(path=str(shots / "4-cost-summary.png"), full_page=True)
            browser.close()

        keys = {a["key"] for a in _api(env, "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [run["id"]]}}})}
        assert {"support-inbox-results", "support-inbox-summary", "support-inbox-ledger"} <= keys

        status = _slmflow(env, "status", "--json")
        assert status.returncode == 0, status.stderr
        report = json.loads(status.stdout)
        health = {s["service"]: s["health"] for s in report["services"]}
        assert health["prefect-server"] == health["ray-head"] == health["prefect-worker"] == "healthy"
        small = next(a for a in report["fleet"] if a["actor"].startswith("small:"))
        assert small["state"] == "ALIVE" and small["served"] >= 6 and small["restarted"] is False
        assert report["metrics"] == f"http://127.0.0.1:{env['SLMFLOW_METRICS_PORT']}/metrics"
        assert "sk-ui-test" not in status.stdout  # the key is masked
        # Everything `up` started, the engine's VLLM::EngineCore and VLLM::Worker in the Ray head's
        # actor included: Ray moves each worker to a process group of its own, in the same session.
        started = {pid for leader in pgids for pid in service_processes(leader)}
        assert any("VLLM" in _name(pid) for pid in started), sorted(_name(pid) for pid in started)
    finally:
        down = _slmflow(env, "down")
    assert down.returncode == 0, down.stderr
    # No grace period: `down` returns once they are gone.
    leftovers = [
        p
        for p in psutil.process_iter(["pid", "status"])
        if p.info["status"] != psutil.STATUS_ZOMBIE and (_pgid(p.pid) in pgids or p.pid in started)
    ]
    assert not leftovers, f"processes left behind: {leftovers}"
    assert not _services(env)


def _name(pid: int) -> str:
    try:
        return psutil.Process(pid).name()
    except psutil.NoSuchProcess:
        return "?"


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None
