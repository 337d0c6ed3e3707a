"""The whole data path on real parts: Prefect API, Ray actors, vLLM, embedded Qdrant, verifier,
and an OpenAI-compatible frontier over HTTP."""

import asyncio
import json
from pathlib import Path

import pytest
import ray
from prefect.client.orchestration import get_client

from flows.job import run_job
from slmflow.core.records import Status, TaskResult
from tests.support.openai_server import ScriptedOpenAIServer

pytestmark = pytest.mark.slow

DEMO = Path(__file__).resolve().parents[2] / "deployments" / "support_inbox" / "job.yaml"


async def _artifacts(flow_run_id):
    async with get_client() as client:
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

        return await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )


def test_demo_job_small_version(prefect_api, fleet, settings):
    state = run_job(str(DEMO), limit=3, return_state=True)
    assert state.is_completed(), state.message
    summary = state.result()
    assert summary["tasks"] == 9
    results = [TaskResult.model_validate_json(line) for line in Path(summary["results_path"]).read_text().splitlines()]
    assert {(r.item_id, r.task_id) for r in results} == {
        (i, t) for i in ("t001", "t002", "t003") for t in ("triage", "details", "reply")
    }
    for r in results:
        assert r.status in Status
        if r.status is not Status.blocked:
            assert r.attempts and r.attempts[0].verdict.checks  # every task has a verdict
        if r.status is Status.escalated:
            assert r.attempts[-1].role == "frontier" and r.output == r.attempts[-1].draft.output
        if r.status is Status.accepted:
            assert r.output == r.attempts[0].draft.output
        if not r.status.verified:
            assert r.output is None
    replies = [r for r in results if r.task_id == "reply" and r.status is not Status.blocked]
    assert replies and all(r.citations and r.citations[0].collection == "kb" for r in replies)
    keys = {a.key for a in asyncio.run(_artifacts(state.state_details.flow_run_id))}
    assert {"support-inbox-results", "support-inbox-summary"} <= keys


def test_escalation_reaches_the_frontier_and_carries_its_answer(prefect_api, fleet, settings, tmp_path, monkeypatch):
    """A task the small model cannot pass (confidence threshold 1.0) must be escalated, and the
    result must be the frontier's verified answer, not the small model's."""
    from flows.job import run_job as flow
    from workers import actors

    spec = tmp_path / "job.yaml"
    spec.write_text(
        json.dumps(
            {
                "name": "escalation",
                "inputs": {"items": [{"id": "1", "text": "My parcel is late"}]},
                "tasks": [
                    {
                        "id": "route",
                        "kind": "classify",
                        "choices": ["shipping", "billing"],
                        "prompt": "{{ item.text }}",
                        "verify": {"min_confidence": 1.0},
                    }
                ],
            }
        )
    )

    # The run prices every draft; LiteLLM's price map does not list this scripted model.
    monkeypatch.setitem(settings.price_aliases, "oracle", "gpt-4o")
    with ScriptedOpenAIServer(lambda req: json.dumps({"label": "shipping"}), model="oracle") as oracle:
        original = fleet.frontier
        fleet.frontier = actors.FrontierWorker.remote(oracle.base_url, "oracle", "k", "oracle", 30.0)
        try:
            state = flow(str(spec), return_state=True)
        finally:
            ray.kill(fleet.frontier)
            fleet.frontier = original
    (result,) = [
        TaskResult.model_validate_json(line) for line in Path(state.result()["results_path"]).read_text().splitlines()
    ]
    assert result.status is Status.escalated
    assert result.model == "oracle" and result.output == "shipping"
    assert [a.role for a in result.attempts] == ["small", "frontier"]
    assert "confidence" in result.reasons[0]
    assert len(oracle.requests) == 1
