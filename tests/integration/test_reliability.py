"""Reliability under injected faults, on the real flow, Prefect API and Ray actors with the null
engine (no inference; every draft is labelled "null-engine (no inference)"). docs/reliability.md
has the table of scenarios and the figures these tests print.

1. a worker dies mid-job: SIGKILL the small-model actor's process while units are in flight;
3. resume: SIGKILL the whole flow process midway, run the job again;
4. the Prefect server restarts during a run;
5. a prompt beyond the model's context, through the real actor and the flow;
8. load: two flows and 500+ queued units on one fleet, with per-actor backpressure.

(2, frontier faults: test_reliability_frontier.py. 5, corpus fuzzing: test_reliability_ingest.py.
7, secrets: test_security.py. 6, injection into tool calls, belongs to the tools work.)

Scenarios 3, 4 and 8 take 25-45 s on 2 cores and are marked slow; 1 and 5 take ~10 s. Each
scenario runs its job in a fresh interpreter (tests/support/reliability_driver.py)
with its own private Ray cluster and settings, started in its own process group so that a test
can kill it whole; every wait has a deadline, and each test checks that nothing it started is left.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from slmflow.core.records import Status, TaskResult
from tests.support.env import clean_env, null_stack_settings
from tests.support.openai_server import ScriptedOpenAIServer
from tests.support.ports import free_ports

REPO = Path(__file__).resolve().parents[2]
DRIVER = "tests.support.reliability_driver"
ROUTES = ["shipping", "billing"]
CHECKS = ["ok", "wrong"]


TASKS = ("route", "check")


def two_task_job(
    name: str, n_items: int, text: Callable[[int], str] = lambda i: f"ticket {i}", tasks: tuple[str, ...] = TASKS
) -> dict:
    """`route` for every item, then `check`, which depends on it (so resuming must also feed
    cached upstream outputs into downstream prompts)."""
    return {
        "name": name,
        "inputs": {"items": [{"id": f"i{i:03d}", "text": text(i)} for i in range(n_items)]},
        "tasks": [
            task
            for task in [
                {"id": "route", "kind": "classify", "choices": ROUTES, "prompt": "Ticket: {{ item.text }}"},
                {
                    "id": "check",
                    "kind": "classify",
                    "choices": CHECKS,
                    "depends_on": ["route"],
                    "prompt": "Ticket {{ item.id }} was routed to {{ upstream.route }}. Right?",
                },
            ]
            if task["id"] in tasks
        ],
    }


def _leftovers(pgid: int) -> list[int]:
    import psutil

    left = []
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(proc.pid) == pgid:
                left.append(proc.pid)
        except (ProcessLookupError, psutil.NoSuchProcess):
            pass
    return left


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL a process group this test started, and reap its leader."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


class Scenario:
    """One scenario's scratch directory and the environment of its driver subprocesses."""

    def __init__(self, root: Path, frontier: ScriptedOpenAIServer, prefect_url: str):
        self.root = root
        self.env = {
            **clean_env(),
            "PREFECT_API_URL": prefect_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "PREFECT_LOGGING_LEVEL": "WARNING",
            **null_stack_settings(root, frontier),
            "SLMFLOW_TASK_CONCURRENCY": "16",
        }
        self.groups: list[int] = []
        self._runs = 0

    def spec(self, raw: dict) -> Path:
        path = self.root / f"{raw['name']}.yaml"
        path.write_text(json.dumps(raw))
        return path

    def start(self, command: str, *args: str, **env: str) -> tuple[subprocess.Popen, Path]:
        self._runs += 1
        out = self.root / f"figures-{self._runs}.json"
        log = open(self.root / f"driver-{self._runs}.log", "w")
        proc = subprocess.Popen(
            [sys.executable, "-m", DRIVER, command, *args, "--out", str(out)],
            cwd=REPO,
            env={**self.env, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.groups.append(proc.pid)
        return proc, out

    def run(self, command: str, *args: str, timeout: float = 300, **env: str) -> dict:
        proc, out = self.start(command, *args, **env)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            pytest.fail(f"driver timed out after {timeout} s:\n{self.log(proc)}")
        assert out.exists(), f"driver exited {code} without figures:\n{self.log(proc)}"
        figures = json.loads(out.read_text())
        figures["exit_code"] = code
        return figures

    def log(self, proc: subprocess.Popen) -> str:
        n = self.groups.index(proc.pid) + 1
        return (self.root / f"driver-{n}.log").read_text()[-6000:]

    def cached_units(self, results_dir: str | None = None) -> int:
        """Unit results persisted in the job's cache, counting only complete records (a record
        cut short by a SIGKILL is not reused: Prefect treats one it cannot parse as absent)."""
        count = 0
        for path in Path(results_dir or self.env["SLMFLOW_RESULTS_DIR"]).glob(".cache/unit-*"):
            try:
                json.loads(path.read_bytes())
                count += 1
            except ValueError:
                pass
        return count

    def check_nothing_left(self) -> None:
        left = {pgid: _leftovers(pgid) for pgid in self.groups}
        assert not any(left.values()), f"processes left behind: {left}"


@pytest.fixture(scope="module")
def frontier() -> Iterator[ScriptedOpenAIServer]:
    """Reached only by the start-up check: the null engine's drafts all pass verification."""
    with ScriptedOpenAIServer(lambda request: json.dumps({"label": ROUTES[0]})) as server:
        yield server


@pytest.fixture
def scenario(prefect_api, frontier) -> Iterator[Scenario]:
    from prefect.settings import PREFECT_API_URL

    root = Path(tempfile.mkdtemp(prefix="slmrel-"))
    s = Scenario(root, frontier, PREFECT_API_URL.value())
    yield s
    for pgid in s.groups:  # a failed test must not leave a flow or its Ray cluster running
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    shutil.rmtree(root, ignore_errors=True)


def results_of(figures: dict) -> list[TaskResult]:
    path = Path(figures["summary"]["results_path"])
    return [TaskResult.model_validate_json(line) for line in path.read_text().splitlines()]


def assert_one_verified_result_per_unit(
    results: list[TaskResult], n_items: int, tasks: tuple[str, ...] = TASKS
) -> None:
    keys = [r.key for r in results]
    expected = {f"i{i:03d}::{t}" for i in range(n_items) for t in tasks}
    assert len(keys) == len(set(keys)), Counter(keys).most_common(3)  # none duplicated
    assert set(keys) == expected  # none lost
    assert {r.status for r in results} == {Status.accepted}, Counter(r.status for r in results)
    first_choice = {"route": ROUTES[0], "check": CHECKS[0]}  # what the null engine answers
    assert all(r.output == first_choice[r.task_id] for r in results)
    assert {r.run_id for r in results} == {results[0].run_id}


def small_actor(figures: dict) -> dict:
    (row,) = [r for r in figures["fleet"] if r["actor"].startswith("small:")]
    return row


def report(name: str, **figures) -> None:
    """One line per scenario with the figures docs/reliability.md quotes (shown with -s or -rA)."""
    print(f"\nRELIABILITY {name}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))


# --- 1. a worker dies mid-job ----------------------------------------------------------------


@pytest.mark.parametrize(
    "load_s", ["0", pytest.param("12", marks=pytest.mark.slow)], ids=["quick-restart", "model-reload"]
)
def test_worker_killed_mid_job_restarts_and_every_unit_has_exactly_one_result(scenario, load_s):
    n_items = 60  # 120 units
    spec = scenario.spec(two_task_job("worker-death", n_items))
    # 0.25 s per request and 16 in flight: about 2 s of model time, so the kill lands mid-job.
    figures = scenario.run(
        "job", str(spec), "--kill-small-after", "30", SLMFLOW_NULL_DELAY_S="0.25", SLMFLOW_NULL_LOAD_S=load_s
    )
    assert figures["state"] == "COMPLETED", figures.get("message")
    kill = figures["kill"]
    assert kill.get("new_pid") and kill["new_pid"] != kill["killed_pid"], kill
    actor = small_actor(figures)
    # Ray restarted it (max_restarts); without a dashboard the actor itself says so.
    assert actor["state"] == "ALIVE" and actor["restarted"] is True

    assert kill["in_flight_at_kill"] > 0, "no request was in flight when the worker died"

    results = results_of(figures)
    assert_one_verified_result_per_unit(results, n_items)
    # One Prefect task run per unit, none failed and none retried: the requests that died with
    # the worker were resubmitted by Ray to the restarted one, even while it was still loading
    # (Prefect's retries, seconds apart, would run out long before a model is back).
    runs = figures["task_runs"]
    assert sorted(r["name"] for r in runs) == sorted(f"{r.task_id}[{r.item_id}]" for r in results)
    assert {(r["state"], r["run_count"]) for r in runs} == {("Completed", 1)}
    scenario.check_nothing_left()
    report(
        f"worker-death load_s={load_s}",
        units=len(results),
        restarted=actor["restarted"],
        in_flight_at_kill=kill["in_flight_at_kill"],
        served_before_kill=kill["served_before_kill"],
        served_after_restart=actor["served"],
        recovery_s=round(kill["recovery_s"], 2),
        job_s=round(figures["wall_s"], 1),
    )


# --- 3. resume after the flow process is killed -----------------------------------------------


@pytest.mark.slow
def test_killed_flow_resumes_without_recomputing_finished_units(scenario):
    n_items, units = 60, 120
    spec = scenario.spec(two_task_job("resume", n_items))
    delay = {"SLMFLOW_NULL_DELAY_S": "0.4"}  # ~4 s of model time at 16 in flight

    # The reference: the same job, uninterrupted, with its own results (and cache) directory.
    baseline = scenario.run("job", str(spec), SLMFLOW_RESULTS_DIR=str(scenario.root / "baseline"), **delay)
    assert baseline["state"] == "COMPLETED", baseline.get("message")
    assert small_actor(baseline)["served"] == units

    proc, _ = scenario.start("job", str(spec), **delay)
    deadline = time.monotonic() + 240
    while scenario.cached_units() < units // 3:
        assert proc.poll() is None, f"the job ended before the crash:\n{scenario.log(proc)}"
        assert time.monotonic() < deadline, scenario.log(proc)
        time.sleep(0.05)
    _kill_group(proc)  # the flow process, its private Ray cluster and fleet, all at once
    time.sleep(1)
    assert not _leftovers(proc.pid)
    cached = scenario.cached_units()
    assert units // 3 <= cached < units

    resumed = scenario.run("job", str(spec), **delay)
    assert resumed["state"] == "COMPLETED", resumed.get("message")
    # The model was called exactly for the units the killed run had not finished.
    assert small_actor(resumed)["served"] == units - cached
    states = Counter(r["state"] for r in resumed["task_runs"])
    assert states["Cached"] == cached and states["Completed"] == units - cached, states

    results = results_of(resumed)
    assert_one_verified_result_per_unit(results, n_items)
    assert {r.run_id for r in results} == {resumed["summary"]["run_id"]}  # reused results restamped

    # Timings are measured, not computed: a draft's latency and engine seconds differ run to run
    # (the null engine's hardware price is 0, so the cost they price is equal).
    def comparable(r: TaskResult) -> dict:
        return r.model_dump(mode="json", exclude={"run_id", "latency_s", "attempts"}) | {
            "attempts": [a.model_dump(mode="json", exclude={"draft": {"latency_s", "engine_s"}}) for a in r.attempts]
        }

    # Lines are written as units settle, so the two files list the same results in their own orders.
    def in_order(rows: list[TaskResult]) -> list[dict]:
        return [comparable(r) for r in sorted(rows, key=lambda r: r.key)]

    assert in_order(results) == in_order(results_of(baseline))
    scenario.check_nothing_left()
    report(
        "resume",
        units=units,
        finished_before_kill=cached,
        recomputed=units - cached,
        model_calls_on_resume=small_actor(resumed)["served"],
        resume_job_s=round(resumed["wall_s"], 1),
        baseline_job_s=round(baseline["wall_s"], 1),
    )


# --- 4. the Prefect server restarts during a run ----------------------------------------------


class PrefectServer:
    """`prefect server start` on 127.0.0.1 with its own PREFECT_HOME (SQLite there), in its own
    process group, so it can be killed whole and started again on the same port and database."""

    def __init__(self, home: Path, port: int):
        self.home, self.port = home, port
        self.proc: subprocess.Popen | None = None
        self.groups: list[int] = []

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def start(self, timeout: float = 180) -> float:
        import httpx

        started = time.monotonic()
        env = {
            **clean_env(),
            "PREFECT_HOME": str(self.home),
            "PREFECT_UI_ENABLED": "false",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
        }
        log = open(self.home / f"server-{len(self.groups)}.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.groups.append(self.proc.pid)
        while time.monotonic() - started < timeout:
            assert self.proc.poll() is None, (self.home / f"server-{len(self.groups) - 1}.log").read_text()
            try:
                if httpx.get(f"{self.api_url}/health", timeout=2).status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"the Prefect server did not answer within {timeout} s")

    def kill(self) -> None:
        _kill_group(self.proc)


@pytest.mark.slow
def test_prefect_server_restart_mid_run_loses_no_result(scenario):
    import httpx

    from tests.support.ports import free_ports

    n_items, units = 100, 200
    home = scenario.root / "prefect-home"
    home.mkdir()
    server = PrefectServer(home, free_ports(1)[0])
    try:
        first_start_s = server.start()
        scenario.env["PREFECT_API_URL"] = server.api_url
        spec = scenario.spec(two_task_job("server-restart", n_items))
        # ~12 s of model time: units finish before, during and after the server's downtime.
        delay = {"SLMFLOW_NULL_DELAY_S": "0.5", "SLMFLOW_TASK_CONCURRENCY": "8"}
        proc, out = scenario.start("job", str(spec), **delay)
        deadline = time.monotonic() + 240
        while scenario.cached_units() < units // 8:
            assert proc.poll() is None, f"the job ended before the restart:\n{scenario.log(proc)}"
            assert time.monotonic() < deadline, scenario.log(proc)
            time.sleep(0.05)
        server.kill()
        down_at = time.monotonic()
        at_kill = scenario.cached_units()
        time.sleep(2)
        restart_s = server.start()
        downtime_s = time.monotonic() - down_at

        # The run either finishes or fails cleanly: it exits on its own, with its figures.
        try:
            code = proc.wait(timeout=300)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            pytest.fail(f"the run hung after the server restart:\n{scenario.log(proc)}")
        first = json.loads(out.read_text()) if out.exists() else {"state": f"exit {code}"}
        assert code in (0, 2), f"the run crashed (exit {code}):\n{scenario.log(proc)}"
        cached = scenario.cached_units()
        if first["state"] == "COMPLETED":
            # The restarted server caught up: the run's final state and every unit's task run.
            run = httpx.get(f"{server.api_url}/flow_runs/{first['flow_run_id']}", timeout=10).json()
            assert run["state_type"] == "COMPLETED"
            assert len(first["task_runs"]) == units

        # Resume against the restarted server: only what was not finished is computed.
        resumed = scenario.run("job", str(spec), **delay)
        assert resumed["state"] == "COMPLETED", resumed.get("message")
        assert small_actor(resumed)["served"] == units - cached
        assert_one_verified_result_per_unit(results_of(resumed), n_items)
    finally:
        if server.proc:
            server.kill()
    scenario.check_nothing_left()
    assert not any(_leftovers(pgid) for pgid in server.groups)
    report(
        "server-restart",
        units=units,
        server_start_s=round(first_start_s, 1),
        restart_s=round(restart_s, 1),
        api_down_s=round(downtime_s, 1),
        cached_at_kill=at_kill,
        first_run=first["state"],
        first_run_cached=cached,
        first_run_s=round(first.get("wall_s", 0), 1),
        first_run_task_runs_recorded=len(first.get("task_runs", [])),
        recomputed_on_resume=units - cached,
    )


# --- 5. a prompt beyond the model's context ----------------------------------------------------


def test_prompt_beyond_context_is_an_explicit_failed_result_not_retried(scenario):
    spec = scenario.spec(two_task_job("too-long", 2, text=lambda i: "parcel late" if i == 0 else "word " * 3000))
    # The null engine in the actor takes its context from the same setting as vLLM.
    figures = scenario.run("job", str(spec), SLMFLOW_VLLM__MAX_MODEL_LEN="256")
    assert figures["state"] == "COMPLETED", figures.get("message")
    results = {r.key: r for r in results_of(figures)}
    assert results["i000::route"].status is results["i000::check"].status is Status.accepted
    rejected = results["i001::route"]
    assert rejected.status is Status.failed and rejected.output is None and not rejected.attempts
    # The reason, not the actor's traceback (Ray wraps the engine's exception).
    assert re.fullmatch(
        r"input rejected by the small model: prompt has ~\d+ tokens; "
        r"the model's context is 256",
        rejected.error,
    ), rejected.error
    assert results["i001::check"].status is Status.blocked  # never fed to a downstream prompt
    runs = {r["name"]: r for r in figures["task_runs"]}
    assert runs["route[i001]"]["state"] == "InputRejected"
    assert runs["route[i001]"]["run_count"] == 1  # deterministic: not retried, not escalated
    assert "check[i001]" not in runs
    assert small_actor(figures)["served"] == 2  # the rejected prompt was asked once, and raised
    scenario.check_nothing_left()


# --- metrics: what a Prometheus scrape finds after a run ----------------------------------------


def _samples(text: str, name: str, **labels: str) -> list:
    from prometheus_client.parser import text_string_to_metric_families

    return [
        s
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]


def test_rays_metrics_endpoint_counts_every_unit_and_its_cost_after_a_run(scenario):
    n_items = 4
    # `route` passes on the null engine's answer; `fields` fails (the null engine answers {}) and
    # escalates to the scripted frontier, whose {"label": "shipping"} the item text grounds.
    spec = scenario.spec(
        {
            "name": "metrics",
            "inputs": {"items": [{"id": f"i{i}", "text": f"parcel {i} for the shipping desk"} for i in range(n_items)]},
            "tasks": [
                {"id": "route", "kind": "classify", "choices": ROUTES, "prompt": "Ticket: {{ item.text }}"},
                {
                    "id": "fields",
                    "kind": "extract",
                    "schema": {"type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"]},
                    "prompt": "Which desk? {{ item.text }}",
                },
            ],
        }
    )
    port = free_ports(1)[0]
    url = f"http://127.0.0.1:{port}/metrics"
    figures = scenario.run(
        "job", str(spec), "--metrics", url, SLMFLOW_METRICS_PORT=str(port), RAY_metrics_report_interval_ms="1000"
    )
    assert figures["state"] == "COMPLETED", figures.get("message")
    results = results_of(figures)
    text = figures["metrics"]
    counted = {
        (s.labels["kind"], s.labels["status"]): s.value
        for s in _samples(text, "ray_slmflow_units_total", job="metrics")
    }
    assert counted == {("classify", "accepted"): n_items, ("extract", "escalated"): n_items}
    assert counted == dict(Counter((r.kind, r.status.value) for r in results))
    for name, field in (
        ("frontier_usd", "frontier_usd"),
        ("counterfactual_usd", "counterfactual_usd"),
        ("cost_usd", "usd"),
    ):
        (sample,) = _samples(text, f"ray_slmflow_{name}_total", job="metrics")
        assert sample.value == pytest.approx(sum(getattr(r.cost, field) for r in results)), name
    assert sum(r.cost.frontier_usd for r in results) > 0
    engine = _samples(text, "ray_slmflow_engine_requests_total", member="null")
    assert sum(s.value for s in engine) == small_actor(figures)["served"] == 2 * n_items
    scenario.check_nothing_left()


# --- 8. load: two flows, 500+ queued units, one fleet --------------------------------------------

MAX_CONCURRENCY = 4


@pytest.mark.slow
def test_two_flows_share_one_fleet_with_backpressure_and_bounded_memory(scenario):
    # Two flows of 260 one-task items: all 520 units are queued as Prefect task runs at once.
    # At 0.2 s per request the actor (4 at a time: 20 requests/s) is about as fast as the
    # orchestration on 2 shared cores, so it runs full for much of the job.
    n_items, delay, tasks = 260, 0.2, ("route",)
    fleet_file = scenario.root / "fleet.yaml"
    fleet_file.write_text(
        json.dumps({"small": [{"name": "null", "model": "null", "max_concurrency": MAX_CONCURRENCY}]})
    )
    specs = [scenario.spec(two_task_job(f"load-{x}", n_items, tasks=tasks)) for x in "ab"]
    figures = scenario.run(
        "load", *map(str, specs), timeout=500, SLMFLOW_FLEET_FILE=str(fleet_file), SLMFLOW_NULL_DELAY_S=str(delay)
    )
    units = 2 * n_items
    for run in figures["runs"]:
        assert run["state"] == "COMPLETED", run.get("message")
        assert_one_verified_result_per_unit(results_of(run), n_items, tasks)
    assert small_actor(figures)["served"] == units

    # Backpressure: the actor never runs more than max_concurrency requests at once while the two
    # flows keep 32 requests outstanding (in list calls, workers.coalesce); the rest wait in the
    # actor, not in the engine. The stats probe is an actor call of its own, so it is answered
    # while the engine is full.
    in_flight = figures["in_flight_samples"]
    assert max(in_flight) <= MAX_CONCURRENCY
    full = sum(n >= MAX_CONCURRENCY - 1 for n in in_flight)
    # How often a sample lands while the actor is full depends on the machine's load (the probe
    # queues behind the work it measures); that it was full at all is what shows the bound held
    # under pressure, and the pace check below shows the actor set the job's speed.
    assert full >= 1, f"the actor was never full in {len(in_flight)} samples"
    # And the pace is the actor's: no faster than max_concurrency requests per delay.
    floor_s = units * delay / MAX_CONCURRENCY
    assert figures["wall_s"] >= floor_s

    growth_mib = (figures["rss_peak"] - figures["rss_start"]) / 2**20
    assert growth_mib < 300, growth_mib
    scenario.check_nothing_left()
    report(
        "load",
        flows=2,
        units=units,
        max_concurrency=MAX_CONCURRENCY,
        max_in_flight_seen=max(in_flight),
        samples=len(in_flight),
        full_share=f"{full / len(in_flight):.0%}",
        wall_s=round(figures["wall_s"], 1),
        actor_utilisation=f"{floor_s / figures['wall_s']:.0%}",
        floor_s=round(floor_s, 1),
        rss_start_mib=round(figures["rss_start"] / 2**20),
        rss_peak_mib=round(figures["rss_peak"] / 2**20),
        growth_mib=round(growth_mib),
        growth_kib_per_unit=round(growth_mib * 1024 / units),
    )


def test_runs_starting_together_both_get_the_frontier_rate_limit(prefect_api, monkeypatch):
    """Found by the load scenario on a fresh server: Prefect's upsert of the rate limit reads,
    then creates; when another run creates it in between, the create raised ObjectAlreadyExists
    and that run failed before doing any work."""
    from prefect.client.orchestration import SyncPrefectClient, get_client
    from prefect.exceptions import ObjectAlreadyExists

    from flows.ratelimit import FRONTIER_RATE_LIMIT, ensure_frontier_rate_limit

    real = SyncPrefectClient.upsert_global_concurrency_limit_by_name
    calls = []

    def racing(self, name, limit, slot_decay_per_second=None):
        calls.append(name)
        if len(calls) == 1:
            real(self, name, limit, slot_decay_per_second)  # the other run wins the race...
            raise ObjectAlreadyExists(None)  # ...so this run's create is refused
        return real(self, name, limit, slot_decay_per_second)

    monkeypatch.setattr(SyncPrefectClient, "upsert_global_concurrency_limit_by_name", racing)
    ensure_frontier_rate_limit(120)
    assert len(calls) == 2
    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name(FRONTIER_RATE_LIMIT)
    assert (limit.limit, limit.slot_decay_per_second) == (2, 2.0)
