"""The task graph of a job: dependency checks, cycle detection and scheduling order."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from graphlib import CycleError, TopologicalSorter


class DagError(ValueError):
    pass


class Dag:
    def __init__(self, depends_on: Mapping[str, Sequence[str]]):
        for task, deps in depends_on.items():
            for dep in deps:
                if dep not in depends_on:
                    raise DagError(f"task '{task}', field 'depends_on': unknown task '{dep}'")
                if dep == task:
                    raise DagError(f"task '{task}', field 'depends_on': a task cannot depend on itself")
        try:
            self.order: list[str] = list(TopologicalSorter(depends_on).static_order())
        except CycleError as exc:
            cycle = " -> ".join(exc.args[1])
            raise DagError(f"field 'depends_on': dependency cycle {cycle}") from None
        self.depends_on = {t: list(d) for t, d in depends_on.items()}
        self.dependents: dict[str, list[str]] = {t: [] for t in depends_on}
        for task in self.order:
            for dep in self.depends_on[task]:
                self.dependents[dep].append(task)

    @property
    def roots(self) -> list[str]:
        return [t for t in self.order if not self.depends_on[t]]
