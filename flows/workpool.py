"""The process work pool (settings `work_pool`, default `local`) and how a flow of this package
becomes a deployment on it.

Deployments name their flow by module path (`flows.job.run_job`), so a worker runs them from any
directory where slmflow is importable: a checkout, an editable install or a wheel.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.deployments.runner import EntrypointType, RunnerDeployment
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

from slmflow.core.settings import get_settings


def work_pool() -> str:
    return get_settings().work_pool


def ensure_work_pool(name: str) -> None:
    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name=name, type="process"))
        except ObjectAlreadyExists:
            pass


def deployment_id(flow_name: str, name: str) -> UUID | None:
    with get_client(sync_client=True) as client:
        try:
            return client.read_deployment_by_name(f"{flow_name}/{name}").id
        except ObjectNotFound:
            return None


def deployment(flow: Any, name: str, **options: Any) -> RunnerDeployment:
    """`flow` as a deployment on the local pool, found by module path."""
    return RunnerDeployment.from_flow(
        flow, name=name, work_pool_name=work_pool(), entrypoint_type=EntrypointType.MODULE_PATH, **options
    )


def register(deployment: RunnerDeployment) -> UUID:
    ensure_work_pool(work_pool())
    applied: UUID = deployment.apply(work_pool_name=work_pool())  # type: ignore[assignment]  # sync here
    return applied
