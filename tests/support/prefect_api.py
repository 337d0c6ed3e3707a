"""What the Prefect API recorded for a flow run, read back for assertions."""

from __future__ import annotations

import asyncio
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import Artifact, TaskRun

PAGE = 200  # the most the API returns per request


def task_runs(flow_run_id: Any) -> list[TaskRun]:
    """Every task run of the flow run. State changes reach the API as events, recorded
    asynchronously: a caller that needs final states waits for them (see `settled`)."""

    async def read() -> list[TaskRun]:
        runs: list[TaskRun] = []
        async with get_client() as client:
            while True:
                page = await client.read_task_runs(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])), limit=PAGE, offset=len(runs)
                )
                runs += page
                if len(page) < PAGE:
                    return runs

    return asyncio.run(read())


UNSETTLED = {None, "Scheduled", "Pending", "Running", "AwaitingRetry", "Retrying"}


def settled(runs: list[TaskRun], expected: int) -> bool:
    """All `expected` task runs are there, each in its final state."""
    return len(runs) >= expected and not any((r.state.name if r.state else None) in UNSETTLED for r in runs)


def artifacts(flow_run_id: Any) -> list[Artifact]:
    async def read() -> list[Artifact]:
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
            )

    return asyncio.run(read())
