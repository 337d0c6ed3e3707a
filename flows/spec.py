"""Job specs: what a user writes (YAML), validated completely before any model is called.

A spec names its inputs (a JSONL file or inline items), the collections to ground on, and a
DAG of tasks. Every error names the job, the task and the field.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from jsonschema import SchemaError
from jsonschema.validators import validator_for
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from flows.budget import BudgetSpec
from flows.dag import Dag, DagError
from flows.inputs import InputError, Item, ItemSource, shape
from flows.templates import Placeholder, TemplateError, check_template, render
from slmflow.core.records import TaskKind
from tools.mcp import MCPServer
from tools.registry import RESERVED, ToolError, ToolRegistry


class SpecError(ValueError):
    """A job spec, its items or its corpus is unusable. The message says where and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Grounding(_Strict):
    collection: str = Field(min_length=1)
    top_k: int = Field(3, ge=1, le=50)
    query: str | None = Field(None, description="template for the search query; default: the prompt")


class VerifyPolicy(_Strict):
    """Per-task overrides of the verifier's thresholds (None = the settings default)."""

    min_confidence: float | None = Field(None, ge=0, le=1)
    min_grounded: float | None = Field(None, ge=0, le=1)
    min_support: float | None = Field(None, ge=0, le=1)


class EscalationPolicy(_Strict):
    """What happens when the small model's draft fails verification."""

    retry_small_with_more_evidence: bool = Field(
        False, description="grounded tasks: retry the small model once with twice the evidence"
    )
    frontier_attempts: int = Field(1, ge=0, le=3, description="0 = never escalate")


class AgentLimits(_Strict):
    """Bounds on one agent episode (one item): it ends in needs-review when either is reached."""

    max_steps: int = Field(6, ge=1, le=50, description="tool calls plus the final answer")
    max_usd: float | None = Field(None, ge=0, description="small + frontier spend of the episode")


class TaskSpec(_Strict):
    id: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    kind: TaskKind
    prompt: str = Field(min_length=1)
    depends_on: list[str] = []
    choices: list[str] | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    grounding: Grounding | None = None
    system: str | None = None
    max_tokens: int = Field(256, ge=1, le=8192)
    verify: VerifyPolicy = VerifyPolicy()
    escalation: EscalationPolicy = EscalationPolicy()
    tools: list[str] | None = Field(None, description="tool_call/agent: the allowlist, by tool name")
    agent: AgentLimits | None = None

    @model_validator(mode="after")
    def _kind_fields(self) -> TaskSpec:
        if self.kind in ("tool_call", "agent"):
            if not self.tools:
                raise ValueError(f"field 'tools': {self.kind} tasks need an allowlist of tools")
            if len(set(self.tools)) != len(self.tools):
                raise ValueError("field 'tools': tool names must be unique")
            reserved = sorted(RESERVED & set(self.tools))
            if reserved:
                raise ValueError(f"field 'tools': {reserved} are offered automatically; do not list them")
        elif self.tools is not None:
            raise ValueError(f"field 'tools': only tool_call and agent tasks take tools, not {self.kind}")
        if self.agent is not None and self.kind != "agent":
            raise ValueError(f"field 'agent': only agent tasks take agent limits, not {self.kind}")
        if self.kind == "classify":
            if not self.choices or len(self.choices) < 2:
                raise ValueError("field 'choices': classify needs at least two choices")
            if len(set(self.choices)) != len(self.choices):
                raise ValueError("field 'choices': choices must be unique")
        elif self.choices is not None:
            raise ValueError(f"field 'choices': only classify tasks take choices, not {self.kind}")
        if self.kind == "extract":
            if self.schema_ is None:
                raise ValueError("field 'schema': extract needs a JSON schema")
            try:
                validator_for(self.schema_).check_schema(self.schema_)
            except SchemaError as exc:
                raise ValueError(f"field 'schema': not a valid JSON Schema: {exc.message}") from None
        elif self.schema_ is not None:
            raise ValueError(f"field 'schema': only extract tasks take a schema, not {self.kind}")
        if self.kind == "answer" and self.grounding is None:
            raise ValueError("field 'grounding': answer tasks must be grounded on a collection")
        for field, source in (
            ("prompt", self.prompt),
            ("system", self.system),
            ("grounding.query", self.grounding and self.grounding.query),
        ):
            if source:
                try:
                    check_template(source, self.depends_on)
                except TemplateError as exc:
                    raise ValueError(f"field '{field}': {exc}") from None
        return self


class Execution(_Strict):
    """How a large job is orchestrated; unset fields take the settings' defaults (docs/scale.md)."""

    batch_above: int | None = Field(None, ge=1, description="units above which the job runs in batches")
    batch_items: int | None = Field(None, ge=1, description="items per batch (one Prefect task run each)")
    shards: int = Field(1, ge=1, le=64, description="parts run at once on the shard pool's Prefect workers")


class ToolSource(_Strict):
    """Where tools come from: every @tool in a module, one function, or an MCP server."""

    module: str | None = Field(None, description="import path of a module, e.g. mypkg.tools")
    function: str | None = Field(None, description="'package.module:function'")
    mcp: MCPServer | None = None

    @model_validator(mode="after")
    def _one(self) -> ToolSource:
        if sum(x is not None for x in (self.module, self.function, self.mcp)) != 1:
            raise ValueError("a tool source is exactly one of 'module', 'function' or 'mcp'")
        return self


class ToolsConfig(_Strict):
    sources: list[ToolSource] = Field(min_length=1)
    workdir: Path | None = Field(
        None,
        description="the only directory sandboxed tools may touch, "
        "relative to the spec; default: <state dir>/tools/<job name>",
    )


class Inputs(_Strict):
    path: Path | None = None
    items: list[dict[str, Any]] | None = None
    id_field: str = "id"

    @model_validator(mode="after")
    def _one_source(self) -> Inputs:
        if (self.path is None) == (self.items is None):
            raise ValueError("give exactly one of 'path' (JSONL) or 'items' (inline)")
        return self


class Collection(_Strict):
    path: Path = Field(description="file or folder of .md/.txt/.jsonl, relative to the spec")


class JobSpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    inputs: Inputs
    collections: dict[str, Collection] = {}
    budget: BudgetSpec = BudgetSpec()
    execution: Execution = Execution()
    tools: ToolsConfig | None = None
    tasks: list[TaskSpec] = Field(min_length=1)

    @field_validator("tasks")
    @classmethod
    def _unique_ids(cls, tasks: list[TaskSpec]) -> list[TaskSpec]:
        seen: set[str] = set()
        for t in tasks:
            if t.id in seen:
                raise ValueError(f"task '{t.id}', field 'id': duplicate task id")
            seen.add(t.id)
        return tasks

    @model_validator(mode="after")
    def _graph(self) -> JobSpec:
        try:
            Dag({t.id: t.depends_on for t in self.tasks})
        except DagError as exc:
            raise ValueError(str(exc)) from None
        return self

    @model_validator(mode="after")
    def _tools_declared(self) -> JobSpec:
        users = [t.id for t in self.tasks if t.tools]
        if users and self.tools is None:
            raise ValueError(f"tasks {users} use tools, but the job declares no 'tools' sources")
        return self

    @property
    def dag(self) -> Dag:
        return Dag({t.id: t.depends_on for t in self.tasks})

    @cached_property
    def _tasks_by_id(self) -> dict[str, TaskSpec]:
        return {t.id: t for t in self.tasks}

    def task(self, task_id: str) -> TaskSpec:
        # Looked up for every unit a large job runs, hence the index.
        return self._tasks_by_id[task_id]


class Job(BaseModel):
    """A validated spec and its items: every item was read once and every template checked against
    it (`ItemSource.scan`); runs read them again as a stream (`iter_items`)."""

    spec: JobSpec
    base_dir: Path
    source: ItemSource
    count: int  # items, after `limit`

    def iter_items(self, start: int = 0, stop: int | None = None) -> Iterator[Item]:
        """Items `start`..`stop` by position (0-based), within the job's `count`."""
        return self.source.stream(start, self.count if stop is None else min(stop, self.count))

    @property
    def units(self) -> int:
        return self.count * len(self.spec.tasks)

    def collection_path(self, name: str) -> Path:
        return (self.base_dir / self.spec.collections[name].path).resolve()


def load_job(spec: str | Path, limit: int | None = None) -> Job:
    """Load and validate a job: `spec` is a spec file or the name of a shipped job (flows.catalog)."""
    from flows.catalog import resolve_spec, shipped_jobs

    path = resolve_spec(spec)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError(f"job spec not found: {path} (shipped jobs: {', '.join(shipped_jobs())})") from None
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise SpecError(f"{path}: not a readable YAML file: {exc}") from None
    return build_job(raw, path.parent, source=str(path), limit=limit)


def build_job(raw: Any, base_dir: Path, source: str = "<spec>", limit: int | None = None) -> Job:
    if not isinstance(raw, dict):
        raise SpecError(f"{source}: a job spec must be a mapping, got {type(raw).__name__}")
    try:
        spec = JobSpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(_describe(exc, raw, source)) from None
    for task in spec.tasks:
        if task.grounding and task.grounding.collection not in spec.collections:
            raise SpecError(
                f"job '{spec.name}', task '{task.id}', field 'grounding.collection': "
                f"'{task.grounding.collection}' is not declared under 'collections'"
            )
    for name, coll in spec.collections.items():
        if not (base_dir / coll.path).exists():
            raise SpecError(
                f"job '{spec.name}', collection '{name}', field 'path': {base_dir / coll.path} does not exist"
            )
    inputs = spec.inputs
    items = ItemSource(
        path=base_dir / inputs.path if inputs.path is not None else None, inline=inputs.items, id_field=inputs.id_field
    )
    try:
        count = items.scan(TemplateCheck(spec), limit)
    except InputError as exc:
        raise SpecError(f"job '{spec.name}', inputs: {exc}") from None
    job = Job(spec=spec, base_dir=base_dir.resolve(), source=items, count=count)
    if spec.tools is not None:
        check_python_tools(job)
    return job


def _describe(exc: ValidationError, raw: dict, source: str) -> str:
    name = raw.get("name", "?")
    lines = [f"{source}: job '{name}' is invalid:"]
    for err in exc.errors():
        loc = list(err["loc"])
        where = ""
        if len(loc) >= 2 and loc[0] == "tasks" and isinstance(loc[1], int):
            tasks = raw.get("tasks") or []
            tid = (
                tasks[loc[1]].get("id", f"#{loc[1]}")
                if loc[1] < len(tasks) and isinstance(tasks[loc[1]], dict)
                else f"#{loc[1]}"
            )
            where = f"task '{tid}'"
            loc = loc[2:]
        field = ".".join(str(p) for p in loc)
        msg = err["msg"].removeprefix("Value error, ")
        if field and "field '" not in msg:
            msg = f"field '{field}': {msg}"
        lines.append(f"  - {where + ', ' if where else ''}{msg}")
    return "\n".join(lines)


class TemplateCheck:
    """Renders every template of every task against an item, before any model call. An item's
    outcome depends on its shape (keys and types) only, so each shape is rendered once."""

    MEMO = 10_000  # shapes remembered; a job of ever-new shapes is checked item by item

    def __init__(self, spec: JobSpec):
        self.spec = spec
        self._passed: set[Any] = set()
        self._upstream = Placeholder()

    def __call__(self, item: Item) -> None:
        key = shape(item.data)
        if key in self._passed:
            return
        for task in self.spec.tasks:
            for field, source in (
                ("prompt", task.prompt),
                ("system", task.system),
                ("grounding.query", task.grounding and task.grounding.query),
            ):
                if not source:
                    continue
                try:
                    render(source, item=item.data, upstream=self._upstream, evidence=[])
                except TemplateError as exc:
                    raise SpecError(
                        f"job '{self.spec.name}', task '{task.id}', field '{field}', item '{item.id}': {exc}"
                    ) from None
        if len(self._passed) < self.MEMO:
            self._passed.add(key)


def python_registry(job: Job) -> ToolRegistry:
    """The spec's Python tools. Module paths resolve against the spec's folder first, so a job's
    own tool module needs no installing."""
    base = str(job.base_dir)
    if base not in sys.path:
        sys.path.insert(0, base)
    registry = ToolRegistry()
    for i, source in enumerate(job.spec.tools.sources if job.spec.tools else []):
        try:
            if source.module:
                registry.add_module(source.module)
            elif source.function:
                registry.add_function(source.function)
        except ToolError as exc:
            raise SpecError(f"job '{job.spec.name}', tools.sources[{i}]: {exc}") from None
    return registry


def check_python_tools(job: Job) -> None:
    """With no MCP sources, every allowlist can be checked now."""
    registry = python_registry(job)
    if job.spec.tools and not any(s.mcp for s in job.spec.tools.sources):
        check_allowlists(job, registry)


def check_allowlists(job: Job, registry: ToolRegistry) -> None:
    for task in job.spec.tasks:
        unknown = [name for name in task.tools or [] if name not in registry]
        if unknown:
            raise SpecError(
                f"job '{job.spec.name}', task '{task.id}', field 'tools': unknown tools "
                f"{unknown}; the job's sources provide {registry.names}"
            )
