"""tau2 task files (`{domain}/tasks_train.json`): the parts slmflow uses.

A task gives the user simulator its scenario, and the scorer the gold actions (replayed to get the
expected database) and the facts the agent must tell the user (`communicate_info`). tau2's other
fields (descriptions, natural-language assertions, annotations) are read past.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator

from evals.errors import EvalError
from evals.tau2.domains import check_domain

TASKS_FILE = "tasks_train.json"


class Instructions(BaseModel):
    domain: str
    reason_for_call: str
    known_info: str | None = None
    unknown_info: str | None = None
    task_instructions: str


class UserScenario(BaseModel):
    persona: str | None = None
    instructions: Instructions


class Action(BaseModel):
    """One gold tool call."""

    action_id: str = ""
    name: str
    arguments: dict[str, Any]


class EvaluationCriteria(BaseModel):
    actions: list[Action] = []
    communicate_info: list[str] = []

    @field_validator("actions", "communicate_info", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        # tau2 writes null for "nothing to check".
        return [] if value is None else value


class Task(BaseModel):
    id: str
    user_scenario: UserScenario
    evaluation_criteria: EvaluationCriteria = Field(default_factory=EvaluationCriteria)

    @property
    def domain(self) -> str:
        return self.user_scenario.instructions.domain


def load_tasks(domain: str, data_dir: Path) -> list[Task]:
    """The domain's train tasks, in file order."""
    path = Path(data_dir) / check_domain(domain) / TASKS_FILE
    if not path.is_file():
        raise EvalError(f"tau2 {domain}: {path} not found (is the shared data folder there?)")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise EvalError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(raw, list):
        raise EvalError(f"{path}: expected a list of tasks, got {type(raw).__name__}")
    tasks = []
    for index, entry in enumerate(raw):
        try:
            task = Task.model_validate(entry)
        except ValidationError as exc:
            where = entry.get("id", f"#{index}") if isinstance(entry, dict) else f"#{index}"
            first = exc.errors()[0]
            field = ".".join(map(str, first["loc"]))
            raise EvalError(f"{path}: task {where}: {field}: {first['msg']}") from None
        if task.domain != domain:
            raise EvalError(f"{path}: task {task.id} is for domain {task.domain!r}, not {domain!r}")
        tasks.append(task)
    return tasks
