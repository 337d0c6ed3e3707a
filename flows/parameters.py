"""What a run may change about a job without editing its spec: the budget and per-task verifier and
escalation policies. These are the typed parameters of the job flow, so the Prefect UI renders them
as a form and the API refuses a malformed value before the run starts (`enforce_parameter_schema`);
what only the spec can judge (a task the job does not have) is refused at flow start, before any
model is called."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flows.budget import BudgetSpec
from flows.spec import EscalationPolicy, Job, JobSpec, SpecError, VerifyPolicy


class TaskOverride(BaseModel):
    """Per-task settings a run may override; unset fields keep the spec's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    verify: VerifyPolicy | None = Field(None, title="verify", description="verifier thresholds for this task")
    escalation: EscalationPolicy | None = Field(
        None, title="escalation", description="what happens when a draft fails verification"
    )
    max_tokens: int | None = Field(None, ge=1, le=8192, title="max_tokens", description="longest draft, in tokens")


class RunParameters(BaseModel):
    """The parameters of one job run that shape its units (kept with each review, so the units a
    decision unblocks run exactly as the run's own did)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    limit: int | None = Field(None, ge=1, description="only the first N items")
    budget: BudgetSpec | None = Field(None, description="frontier budget for this run; default: the spec's")
    overrides: dict[str, TaskOverride] = Field(default_factory=dict, description="per task id")


def apply_parameters(job: Job, params: RunParameters) -> Job:
    """`job` with the run's budget and task overrides, validated as a spec would be: an error names
    the job, the task and the field."""
    if params.budget is None and not params.overrides:
        return job
    tasks = {t.id for t in job.spec.tasks}
    unknown = sorted(set(params.overrides) - tasks)
    if unknown:
        raise SpecError(
            f"job '{job.spec.name}', parameter 'overrides': unknown tasks {unknown}; the job has {sorted(tasks)}"
        )
    raw = job.spec.model_dump(mode="json", by_alias=True, exclude_unset=True)
    if params.budget is not None:
        raw["budget"] = params.budget.model_dump(mode="json", exclude_none=True)
    for task in raw["tasks"]:
        override = params.overrides.get(task["id"])
        if override is not None:
            task.update(override.model_dump(mode="json", exclude_none=True))
    try:
        spec = JobSpec.model_validate(raw)
    except ValidationError as exc:
        where = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3])
        raise SpecError(f"job '{job.spec.name}', parameter 'overrides': {where}") from None
    return job.model_copy(update={"spec": spec})


def job_name(job: str) -> str:
    """The job's own name for a shipped job's name or a spec path (without validating the spec): what
    run names and tags say. Falls back to the file's stem."""
    from flows.catalog import resolve_spec

    path = resolve_spec(job)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        raw = None
    if isinstance(raw, dict) and isinstance(raw.get("name"), str):
        return raw["name"]
    return Path(job).stem


def job_tag(name: str) -> str:
    """The tag every run of a job carries (job runs and their reviews): the Runs page filters on it."""
    return f"job:{name}"
