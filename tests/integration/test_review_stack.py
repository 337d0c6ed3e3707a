"""Review as an operator meets it, on the whole stack `slmflow up` starts (Prefect server with its UI
and automations, Ray head, fleet, a worker on the `local` pool), with the null engine as the small
model and a scripted frontier (tests/support/review_job.py), so no model runs:

- a run that leaves units for review ends `NeedsReview`, and the alert automation's webhook fires
  once, with the run's link;
- while its reviews are open, no process waits on them and the fleet serves another run;
- decisions from the terminal (`slmflow review`) and from the Prefect UI's Resume dialog (headless
  Chromium) update the results file, the artifacts, the blocked downstream unit and the label store;
  a rejection stays rejected; the run becomes `Reviewed` once all are decided;
- a job's deployment has a typed form: a bad override is refused before the run exists, a budget
  given in the form applies, and its exhaustion alerts.

The tests run in order on one stack and one job run (module scope). Screenshots go to the session
dir (`screenshots/review-*.png`); docs/img has the ones the docs show.
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from slmflow.core.records import Status, TaskResult
from tests.support.env import clean_env
from tests.support.openai_server import ScriptedOpenAIServer
from tests.support.ports import free_ports, port_block
from tests.support.review_job import WebhookReceiver, frontier_answer, review_spec, write_spec

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
MAX_REVIEW = 2  # the job leaves 3 units for review: the backlog alert fires once


@dataclass
class Stack:
    root: Path
    env: dict[str, str]
    hooks: WebhookReceiver
    spec: Path
    shots: Path
    run: dict[str, Any] = field(default_factory=dict)  # the job run the tests share

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.env['SLMFLOW_PREFECT_PORT']}/api"

    @property
    def ui(self) -> str:
        return self.api.removesuffix("/api")

    def slmflow(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        # This checkout's code, whatever the venv's console script points at.
        return subprocess.run(
            [sys.executable, "-c", "from slmflow.cli.app import app; app()", *args],
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def get(self, path: str) -> Any:
        return httpx.get(f"{self.api}{path}", timeout=30).json()

    def post(self, path: str, body: dict) -> httpx.Response:
        return httpx.post(f"{self.api}{path}", json=body, timeout=30)

    def flow_run(self, run_id: str) -> dict[str, Any]:
        return self.get(f"/flow_runs/{run_id}")

    def results(self) -> dict[str, TaskResult]:
        """The run's results: each unit's last record."""
        latest: dict[str, TaskResult] = {}
        for line in Path(self.run["results"]).read_text().splitlines():
            r = TaskResult.model_validate_json(line)
            latest[r.key] = r
        return latest

    def reviews(self) -> list[dict[str, Any]]:
        """The run's open reviews, as `slmflow review list --json` gives them."""
        out = self.slmflow("review", "list", "--run", self.run["id"], "--json")
        assert out.returncode == 0, out.stdout + out.stderr
        return json.loads(out.stdout)

    def open_reviews(self) -> dict[str, str]:
        """item -> review run id, from the API (quicker than the CLI, which has its own test)."""
        runs = self.post(
            "/flow_runs/filter",
            {"flow_runs": {"state": {"type": {"any_": ["PAUSED"]}}, "tags": {"all_": [f"run:{self.run['id']}"]}}},
        ).json()
        return {r["parameters"]["case"]["item_id"]: r["id"] for r in runs}

    def review_of(self, item: str) -> str:
        return self.open_reviews()[item]

    def artifacts(self, run_id: str, key: str) -> list[dict[str, Any]]:
        found = self.post(
            "/artifacts/filter",
            {"artifacts": {"flow_run_id": {"any_": [run_id]}, "key": {"any_": [key]}}, "sort": "CREATED_DESC"},
        ).json()
        return found


def wait_until(check: Callable[[], Any], timeout: float, what: str, every: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    # Short paths: Ray's socket paths under its temp dir must stay < 107 bytes.
    root = Path(tempfile.mkdtemp(prefix="slmrv-"))
    shots = Path(os.environ.get("SLMFLOW_RESULTS_DIR", root)).parent / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    prefect_port, health_port = free_ports(2)
    with ScriptedOpenAIServer(frontier_answer) as frontier, WebhookReceiver() as hooks:
        env = clean_env(
            PYTHONPATH=str(REPO),
            SLMFLOW_SMALL_MODEL="null",
            SLMFLOW_CACHE_DIR=str(root / "c"),
            SLMFLOW_STATE_DIR=str(root / "s"),
            SLMFLOW_QDRANT_DIR=str(root / "q"),
            SLMFLOW_RESULTS_DIR=str(root / "runs"),
            SLMFLOW_PREFECT_PORT=str(prefect_port),
            SLMFLOW_RAY_PORT=str(port_block(3, range(40000, 47000, 19))),
            SLMFLOW_WORKER_HEALTH_PORT=str(health_port),
            SLMFLOW_FRONTIER_BASE_URL=frontier.base_url,
            SLMFLOW_FRONTIER_MODEL=frontier.model,
            SLMFLOW_PRICE_ALIASES=frontier.price_aliases,
            SLMFLOW_ALERT_WEBHOOK=hooks.url,
            SLMFLOW_ALERT_MAX_REVIEW=str(MAX_REVIEW),
            SLMFLOW_TASK_CONCURRENCY="8",
            PREFECT_LOGGING_LEVEL="WARNING",
        )
        s = Stack(root, env, hooks, write_spec(root / "jobs", review_spec()), shots)
        try:
            # Inside the try: an `up` that fails halfway has started services that `down` must stop.
            up = s.slmflow("up")
            assert up.returncode == 0, up.stdout + up.stderr
            pgids = {json.loads(p.read_text())["pid"] for p in (root / "s").glob("*.json")}
            yield s
        finally:
            down = s.slmflow("down")
        assert down.returncode == 0, down.stderr
        time.sleep(1)
        left = [p.pid for p in psutil.process_iter() if _pgid(p.pid) in pgids and p.status() != psutil.STATUS_ZOMBIE]
        assert not left, f"processes left behind: {left}"
    shutil.rmtree(root, ignore_errors=True)


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def test_run_with_reviews_ends_needs_review_and_alerts_once_with_its_link(stack):
    out = stack.slmflow("run", str(stack.spec))
    assert out.returncode == 0, out.stdout + out.stderr
    run_id = re.search(r"/runs/flow-run/([0-9a-f-]{36})", out.stdout).group(1)
    assert "3 units await review" in out.stdout and f"slmflow review list --run {run_id}" in out.stdout
    run = stack.flow_run(run_id)
    assert (run["state_type"], run["state_name"]) == ("COMPLETED", "NeedsReview")
    assert run["name"].startswith("review-desk 20") and "job:review-desk" in run["tags"]
    (ledger,) = stack.artifacts(run_id, "review-desk-ledger")
    assert json.loads(ledger["data"])[0]["needs_review"] == 3
    stack.run.update(id=run_id, name=run["name"])

    reviews = stack.reviews()
    assert sorted(r["item"] for r in reviews) == ["r2", "r3", "r4"]
    assert {r["task"] for r in reviews} == {"details"} and all(r["reasons"] for r in reviews)
    assert {r["job"] for r in reviews} == {"review-desk"} and {r["run"] for r in reviews} == {run_id}
    stack.run["results"] = reviews[0]["results"]
    results = stack.results()
    assert results["r1::details"].status is Status.escalated and results["r1::route"].status is Status.accepted
    assert {results[f"{i}::route"].status for i in ("r2", "r3", "r4")} == {Status.blocked}

    # The automation fires on the (MAX_REVIEW + 1)-th review event of the run, once.
    (alert,) = wait_until(lambda: stack.hooks.alerts("review-backlog"), 60, "the review-backlog webhook")
    time.sleep(5)  # nothing more comes
    assert len(stack.hooks.alerts("review-backlog")) == 1
    assert alert["run_id"] == run_id and alert["more_than"] == MAX_REVIEW and alert["job"] == "review-desk"
    assert alert["run_url"] == f"{stack.ui}/runs/flow-run/{run_id}"
    call = next(c for c in stack.hooks.calls if "review-backlog" in c["body"])
    assert call["headers"].get("Content-Type") == "application/json"
    assert not stack.hooks.alerts("budget-exhausted")


def test_open_reviews_hold_no_process_and_the_fleet_serves_another_run(stack):
    worker = json.loads((stack.root / "s" / "prefect-worker.json").read_text())
    paused = stack.open_reviews()
    assert len(paused) == 3 and {stack.flow_run(r)["state_name"] for r in paused.values()} == {"Suspended"}
    # Never Scheduled, so no worker could take one in the instant before it was suspended.
    for review in paused.values():
        history = [s["type"] for s in stack.get(f"/flow_run_states/?flow_run_id={review}")]
        assert history == ["RUNNING", "PAUSED"], (review, history)
    # Suspended runs have no process: the worker runs nothing (its children are its own helpers).
    flow_processes = [
        p for p in psutil.Process(worker["pid"]).children(recursive=True) if "prefect.engine" in " ".join(p.cmdline())
    ]
    assert not flow_processes, [p.cmdline() for p in flow_processes]

    before = _served(stack)
    other = write_spec(stack.root / "jobs", review_spec("review-other", {"r1": "order A100 is late"}))
    out = stack.slmflow("run", str(other))
    assert out.returncode == 0, out.stdout + out.stderr
    other_id = re.search(r"/runs/flow-run/([0-9a-f-]{36})", out.stdout).group(1)
    assert stack.flow_run(other_id)["state_name"] == "Completed"  # every unit verified: plain Completed
    assert _served(stack) > before  # the same fleet served it
    assert len(stack.open_reviews()) == 3  # the reviews wait on


def _served(stack: Stack) -> int:
    out = stack.slmflow("status", "--json")
    assert out.returncode == 0, out.stderr
    (small,) = [a for a in json.loads(out.stdout)["fleet"] if a["actor"].startswith("small:")]
    return small["served"]


def test_terminal_decisions_are_checked_and_applied_by_the_worker(stack):
    r3 = stack.review_of("r3")
    show = stack.slmflow("review", "show", r3[:8])
    assert show.returncode == 0, show.stderr
    assert "A999" in show.stdout and "approve-frontier" in show.stdout and "grounded_values" in show.stdout

    # Refused before anything changes, naming the unit and the field; the review stays open.
    bad = stack.slmflow("review", "decide", r3[:8], "--answer", '{"order_id": "nope"}', "--reviewer", "bob")
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "job 'review-desk', task 'details', item 'r3'" in bad.stderr and "order_id" in bad.stderr
    small = stack.slmflow("review", "decide", r3, "--approve", "small", "--reviewer", "bob")
    assert small.returncode == 1 and "approve-small" in small.stderr  # `{}` breaks the contract
    assert stack.flow_run(r3)["state_name"] == "Suspended"

    ok = stack.slmflow("review", "decide", r3, "--approve", "frontier", "--reviewer", "bob")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "approve-frontier by bob -> approved; unblocked: route[r3] accepted" in ok.stdout
    results = stack.results()
    assert results["r3::details"].status is Status.approved and results["r3::details"].output == {"order_id": "A999"}
    review = results["r3::details"].review
    assert review and review.reviewer == "bob" and review.overturned and review.id == r3
    assert results["r3::route"].status is Status.accepted and "A999" in results["r3::route"].prompt
    assert stack.flow_run(r3)["state_name"] == "Approved"

    journal = [json.loads(line) for line in (stack.root / "runs" / "decisions.jsonl").read_text().splitlines()]
    assert [(d["item_id"], d["action"], d["reviewer"]) for d in journal] == [("r3", "approve-frontier", "bob")]
    labels = _review_labels(stack, "r3")
    assert {(lab["role"], lab["correct"]) for lab in labels} == {("small", False), ("frontier", True)}


def _review_labels(stack: Stack, item: str) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (stack.root / "runs" / "labels.jsonl").read_text().splitlines()]
    return [r for r in rows if r.get("source") == "review" and r["item_id"] == item]


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed")
def test_decisions_in_the_prefect_ui_count(stack):
    from playwright.sync_api import sync_playwright

    r2, r4 = stack.review_of("r2"), stack.review_of("r4")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})

        # The queue: the run's review runs, suspended, filtered by the job's tag.
        page.goto(f"{stack.ui}/v2/runs/flow-run/{stack.run['id']}", wait_until="networkidle", timeout=120_000)
        page.get_by_text("NeedsReview").first.wait_for(timeout=30_000)
        page.screenshot(path=str(stack.shots / "review-1-run-needs-review.png"))

        # r2: both drafts break the contract; correct it.
        _resume_dialog(page, stack, r2)
        dialog = page.get_by_role("dialog")
        page.screenshot(path=str(stack.shots / "review-2-resume-dialog.png"))
        _choose(page, dialog, "correct")
        dialog.get_by_label("order_id", exact=True).fill("A200")
        dialog.get_by_label("Reviewer").fill("ann")
        dialog.get_by_text("Reviewer").first.scroll_into_view_if_needed()
        page.screenshot(path=str(stack.shots / "review-3-correct-answer.png"))
        _submit(page, stack, dialog, r2)
        _wait_final(stack, r2)

        # r4: reject it, with the reason.
        _resume_dialog(page, stack, r4)
        dialog = page.get_by_role("dialog")
        _choose(page, dialog, "reject")
        dialog.get_by_label("Reason").fill("the ticket names no order")
        dialog.get_by_label("Reviewer").fill("ann")
        _submit(page, stack, dialog, r4)
        _wait_final(stack, r4)

        page.goto(f"{stack.ui}/v2/runs/flow-run/{r2}", wait_until="networkidle")
        page.get_by_role("tab", name="Artifacts").click()
        page.get_by_text("review-desk-review").first.wait_for(timeout=30_000)
        page.get_by_text("review-desk-review").first.click()
        page.get_by_role("cell", name="correct").first.wait_for(timeout=30_000)
        page.screenshot(path=str(stack.shots / "review-4-decision-artifact.png"), full_page=True)
        browser.close()

    results = stack.results()
    assert results["r2::details"].status is Status.approved and results["r2::details"].output == {"order_id": "A200"}
    assert results["r2::details"].model == "reviewer" and results["r2::details"].review.action == "correct"
    assert results["r2::route"].status is Status.accepted  # the blocked downstream unit ran
    assert results["r4::details"].status is Status.rejected
    assert "the ticket names no order" in results["r4::details"].error
    assert results["r4::route"].status is Status.blocked  # never runs on a rejected input
    # Nothing was overwritten: the run's own records are still in the file, before the decisions.
    lines = [TaskResult.model_validate_json(x) for x in Path(stack.run["results"]).read_text().splitlines()]
    assert [r.status for r in lines if r.key == "r2::details"] == [Status.needs_review, Status.approved]

    # Labels: r2's drafts were wrong and the correction right; r4's drafts wrong.
    assert {(lab["role"], lab["correct"]) for lab in _review_labels(stack, "r2")} == {
        ("small", False),
        ("frontier", False),
        ("reviewer", True),
    }
    assert {lab["correct"] for lab in _review_labels(stack, "r4")} == {False}

    # The run's artifacts have a new version; every review decided, the run is Reviewed.
    (latest, *_) = stack.artifacts(stack.run["id"], "review-desk-results")
    rows = {(r["item"], r["task"]): r["status"] for r in json.loads(latest["data"])}
    assert rows[("r2", "details")] == "approved" and rows[("r2", "route")] == "accepted"
    assert rows[("r4", "details")] == "rejected"
    (ledger, *_) = stack.artifacts(stack.run["id"], "review-desk-ledger")
    row = json.loads(ledger["data"])[0]
    assert (row["approved"], row["rejected"], row["needs_review"]) == (2, 1, 0)
    run = stack.flow_run(stack.run["id"])
    assert (run["state_type"], run["state_name"]) == ("COMPLETED", "Reviewed")
    assert not stack.open_reviews()

    # History reads the decisions back.
    history = stack.slmflow("history", "--job", "review-desk", "--json")
    assert history.returncode == 0, history.stderr
    (series,) = json.loads(history.stdout)["jobs"]
    last = series["runs"][-1]
    assert last["reviewed"] == 3 and last["overturned"] == 1 and last["rejected"] == 1


def _resume_dialog(page, stack: Stack, review_id: str) -> None:
    page.goto(f"{stack.ui}/v2/runs/flow-run/{review_id}", wait_until="networkidle", timeout=120_000)
    page.get_by_text("Suspended").first.wait_for(timeout=30_000)
    page.get_by_role("button", name="Open menu").click()
    page.get_by_role("menuitem", name="Resume").click()
    page.get_by_role("dialog").wait_for()


def _submit(page, stack: Stack, dialog, review_id: str) -> None:
    """Resume; the dialog closes once the UI has sent the decision (it stays open on a form error).
    Under CI's load a click once left the dialog open with its form filled in and the review still
    paused (no decision sent), so a missed click is repeated, with a screenshot of each miss. A
    review no longer paused got its decision: the dialog is then just slow to close."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for attempt in range(3):
        dialog.get_by_role("button", name="Resume").click()
        try:
            dialog.wait_for(state="hidden", timeout=20_000)
            return
        except PlaywrightTimeout:
            page.screenshot(path=str(stack.shots / f"review-missed-resume-{attempt}.png"))
            if stack.flow_run(review_id)["state_type"] != "PAUSED":
                return
    raise AssertionError(f"review {review_id}: three clicks on Resume sent nothing (review-missed-resume-*.png)")


def _choose(page, dialog, decision: str) -> None:
    dialog.get_by_role("button", name="Select Decision").click()
    page.get_by_role("option", name=decision, exact=True).click()


def _wait_final(stack: Stack, review_id: str) -> dict[str, Any]:
    """The server reschedules the resumed review; the worker runs it to its end."""
    run = _finished(stack, review_id, f"review {review_id} to be applied", 240)
    assert run["state_type"] == "COMPLETED", run["state"]
    return run


def _finished(stack: Stack, run_id: str, what: str, timeout: float) -> dict[str, Any]:
    """The flow run once it has ended. A timeout says where it stood (still PAUSED or SCHEDULED:
    the worker never took it; RUNNING: it hung) and what the worker logged."""
    last: dict[str, Any] = {}

    def final() -> dict[str, Any] | None:
        last.update(stack.flow_run(run_id))
        return dict(last) if last["state_type"] in ("COMPLETED", "FAILED", "CRASHED") else None

    try:
        return wait_until(final, timeout, what)
    except AssertionError as late:
        state = last.get("state") or {}
        log = Path(stack.env["SLMFLOW_STATE_DIR"]) / "prefect-worker.log"
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:]) if log.exists() else "(no worker log)"
        where = f"{state.get('type')} {state.get('name')}: {state.get('message')}"
        raise AssertionError(f"{late}; its state: {where}; the worker's log ends:\n{tail}") from None


def test_a_jobs_deployment_has_a_typed_form_and_its_budget_alerts(stack):
    out = stack.slmflow("deploy", str(stack.spec))
    assert out.returncode == 0, out.stdout + out.stderr
    deployment = stack.get("/deployments/name/slmflow-job/review-desk")
    schema = deployment["parameter_openapi_schema"]
    assert schema["properties"]["spec"]["enum"] == [str(stack.spec.resolve())]
    assert set(schema["properties"]["overrides"]["properties"]) == {"details", "route"}
    assert deployment["enforce_parameter_schema"] and "job:review-desk" in deployment["tags"]
    shipped = stack.get("/deployments/name/slmflow-job/support-inbox")
    assert shipped["parameter_openapi_schema"]["properties"]["spec"]["enum"] == ["support-inbox"]

    # Refused by the API before a run exists: a task the job does not have, a limit below 1.
    for bad in ({"overrides": {"nosuch": {}}}, {"limit": 0}):
        refused = stack.post(f"/deployments/{deployment['id']}/create_flow_run", {"parameters": bad})
        assert refused.status_code == 409, (bad, refused.text)

    created = stack.post(
        f"/deployments/{deployment['id']}/create_flow_run",
        {"parameters": {"budget": {"max_escalations": 1}, "overrides": {"route": {"max_tokens": 8}}}},
    )
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]
    run = _finished(stack, run_id, "the deployment run", 300)
    assert (run["state_type"], run["state_name"]) == ("COMPLETED", "NeedsReview"), run["state"]
    assert run["name"].startswith("review-desk 20")
    (alert,) = wait_until(lambda: stack.hooks.alerts("budget-exhausted"), 60, "the budget webhook")
    assert alert["run_id"] == run_id and "budget exhausted: 1/1 escalations used" in alert["reason"]

    from playwright.sync_api import sync_playwright

    if CHROMIUM is None:
        return
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{stack.ui}/v2/deployments/deployment/{deployment['id']}", wait_until="networkidle", timeout=120_000)
        page.get_by_role("button", name="Run", exact=True).click()
        page.get_by_role("menuitem", name="Custom run").click()
        page.get_by_text("overrides").first.wait_for(timeout=30_000)
        page.screenshot(path=str(stack.shots / "review-5-typed-form.png"), full_page=True)
        browser.close()


def test_up_again_restarts_a_worker_that_died(stack):
    # Last in the module: every review opened and decided above left the first worker running.
    assert _health(stack, "prefect-worker") == "healthy", "the Prefect worker died (see prefect-worker.log)"
    record = stack.root / "s" / "prefect-worker.json"
    dead = json.loads(record.read_text())["pid"]
    os.killpg(dead, signal.SIGKILL)  # the worker leads its own session (services.start)
    wait_until(lambda: _health(stack, "prefect-worker") == "down", 30, "status to show the worker down")

    up = stack.slmflow("up")
    assert up.returncode == 0, up.stdout + up.stderr
    assert json.loads(record.read_text())["pid"] != dead and _health(stack, "prefect-worker") == "healthy"


def _health(stack: Stack, service: str) -> str:
    out = stack.slmflow("status", "--json")
    assert out.returncode == 0, out.stderr
    (row,) = [s for s in json.loads(out.stdout)["services"] if s["service"] == service]
    return row["health"]
