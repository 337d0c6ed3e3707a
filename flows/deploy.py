"""One deployment per job, named after it (`slmflow-job/support-inbox`), with a typed parameter form:
the job itself (fixed), item limit, budget, recompute, and an override block per task of that job.
`slmflow deploy` registers them (every shipped job, and any spec given), `slmflow up` registers the
shipped ones, and the review deployment every job run's reviews belong to.

The Prefect API enforces the form (`enforce_parameter_schema`): a malformed value, or an override
for a task the job does not have, is refused before the run is created; the flow checks the rest
(the spec itself) before any model is called.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect.utilities.annotations import freeze

from flows.catalog import shipped_jobs
from flows.job import run_job
from flows.parameters import job_tag
from flows.review import ensure_review_deployment
from flows.spec import Job, load_job
from flows.workpool import deployment, register


def job_deployment_schema(base: dict[str, Any], job: Job) -> dict[str, Any]:
    """The flow's parameter schema narrowed to `job`: one optional override block per task."""
    schema = copy.deepcopy(base)
    schema["properties"]["spec"]["title"] = "job"
    overrides = schema["properties"]["overrides"]
    for key in ("anyOf", "additionalProperties"):
        overrides.pop(key, None)
    overrides.update(
        {
            "type": "object",
            "default": {},
            "additionalProperties": False,
            "properties": {
                task.id: {
                    "$ref": "#/definitions/TaskOverride",
                    "title": task.id,
                    "description": f"{task.kind} task; spec: {task.verify.model_dump(exclude_none=True) or 'default'} "
                    f"verifier thresholds, {task.escalation.frontier_attempts} frontier attempt(s)",
                }
                for task in job.spec.tasks
            },
        }
    )
    return schema


def deploy_job(spec: str | Path, cron: str | None = None) -> tuple[str, UUID]:
    """Register `spec` (a shipped job's name or a spec file) as the deployment named after its job."""
    job = load_job(spec)
    name = job.spec.name
    target = name if isinstance(spec, str) and spec == name else str(Path(spec).resolve())
    d = deployment(
        run_job,
        name,
        parameters={"spec": freeze(target)},
        tags=[job_tag(name)],
        description=job.spec.description or f"Run the {name} job.",
        cron=cron,
    )
    narrowed = job_deployment_schema(d._parameter_openapi_schema.model_dump(), job)
    d._parameter_openapi_schema = type(d._parameter_openapi_schema).model_validate(narrowed)
    return name, register(d)


def deploy_all(specs: list[str] | None = None, cron: str | None = None) -> dict[str, UUID]:
    """Every shipped job, the given specs, and the review deployment."""
    done = {name: deploy_job(name)[1] for name in shipped_jobs()}
    for spec in specs or []:
        name, deployment_id = deploy_job(spec, cron=cron)
        done[name] = deployment_id
    done["review"] = ensure_review_deployment()
    return done
