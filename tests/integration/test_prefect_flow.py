"""The DAG scheduler on the real Prefect API: per-task states, blocking, and the artifacts."""

from pathlib import Path

import pytest
from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from flows.cascade import UnitContext
from flows.job import run_units
from flows.ledger import Ledger
from flows.report import publish_artifacts
from flows.spec import build_job
from flows.summary import RunSummary
from slmflow.core.records import Status
from tests.support.fakes import SETTINGS, ByFirstWord
from tests.support.prefect_api import artifacts as flow_run_artifacts
from tests.support.prefect_api import task_runs

JOB = build_job(
    {
        "name": "prefect-states",
        "inputs": {"items": [{"id": "ok", "text": "a"}, {"id": "esc", "text": "b"}, {"id": "bad", "text": "c"}]},
        "tasks": [
            {"id": "label", "kind": "classify", "choices": ["a", "b"], "prompt": "{{ item.text }}"},
            {
                "id": "echo",
                "kind": "classify",
                "choices": ["a", "b"],
                "depends_on": ["label"],
                "prompt": "{{ item.text }} {{ upstream.label }}",
            },
        ],
    },
    Path("."),
)


@flow(name="test-dag", task_runner=ThreadPoolTaskRunner(max_workers=4))
def dag_flow():
    ctx = UnitContext("prefect-states", "r1", ByFirstWord(), Ledger(SETTINGS, "big"))
    results = run_units(JOB, ctx, retries=0)
    publish_artifacts(RunSummary.of("prefect-states", "r1", results, 1.0), "big", results)
    return [r.model_dump(mode="json") for r in results]


def test_states_blocking_and_artifacts(prefect_api):
    state = dag_flow(return_state=True)
    results = {(r["item_id"], r["task_id"]): r for r in state.result()}
    assert len(results) == 6  # exactly one result per item x task
    assert results[("ok", "label")]["status"] == Status.accepted
    assert results[("esc", "label")]["status"] == Status.escalated
    assert results[("esc", "label")]["output"] == "b"
    assert results[("bad", "label")]["status"] == Status.needs_review
    assert results[("bad", "echo")]["status"] == Status.blocked  # never ran on unverified input
    assert results[("esc", "echo")]["status"] == Status.escalated  # ran on the verified 'b'

    runs = task_runs(state.state_details.flow_run_id)
    artifacts = flow_run_artifacts(state.state_details.flow_run_id)
    names = sorted((r.name, r.state.name) for r in runs)
    assert ("label[ok]", "Completed") in names
    assert ("label[esc]", "Escalated") in names
    assert ("label[bad]", "NeedsReview") in names
    assert not any(n.startswith("echo[bad]") for n, _ in names)
    assert len(runs) == 5
    keys = {a.key for a in artifacts}
    assert {"prefect-states-results", "prefect-states-summary"} <= keys


def test_history_reads_runs_back_and_plots(prefect_api, tmp_path):
    from typer.testing import CliRunner

    from flows.history import plot_history, read_history
    from slmflow.cli.app import app

    before = len(read_history("prefect-states"))
    results = dag_flow()
    rows = read_history("prefect-states")
    assert len(rows) == before + 1
    last = rows[-1].summary
    assert last.tasks == 6
    assert (last.counts["accepted"], last.counts["escalated"], last.counts["needs_review"], last.counts["blocked"]) == (
        2,
        2,
        1,
        1,
    )
    # Read back as the run computed them. (Which is larger depends on the fakes' token counts: the
    # counterfactual counts the real prompts with the frontier's tokenizer, docs/costs.md.)
    assert last.usd == pytest.approx(sum(r["cost"]["usd"] for r in results)) and last.usd > 0
    counterfactual = sum(r["cost"]["counterfactual_usd"] for r in results)
    assert last.counterfactual_usd == pytest.approx(counterfactual) and counterfactual > 0
    png = plot_history(rows, tmp_path / "h.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    out = CliRunner().invoke(
        app,
        ["history", "--job", "prefect-states", "--since", "1h", "--plot", str(tmp_path / "cli.png")],
        env={"COLUMNS": "200"},
    )
    assert out.exit_code == 0, out.output
    assert "prefect-states" in out.output and (tmp_path / "cli.png").exists()
    bad = CliRunner().invoke(app, ["history", "--since", "yesterday"])
    assert bad.exit_code == 1 and "--since" in bad.output
