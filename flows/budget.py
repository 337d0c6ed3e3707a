"""A per-run escalation budget shared by every unit of the run (threads of one flow run).

Escalations reserve their estimated cost before the frontier is called and settle the actual cost
after, so concurrent units cannot overspend together. When the budget is exhausted, the units that
would need the frontier end as needs-review with the reason; they are never accepted unverified.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field


class BudgetSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_usd: float | None = Field(None, ge=0, description="frontier spend per run, USD")
    max_escalations: int | None = Field(None, ge=0, description="frontier calls per run")


class Budget:
    """`on_exhausted(reason)` is called once, at the first refusal (the run emits an event)."""

    def __init__(self, spec: BudgetSpec | None = None, on_exhausted: Callable[[str], None] | None = None):
        self.spec = spec or BudgetSpec()
        self._lock = threading.Lock()
        self.spent_usd = 0.0
        self.reserved_usd = 0.0
        self.escalations = 0
        self._on_exhausted = on_exhausted
        self.refused = 0

    def reserve(self, estimate_usd: float) -> str | None:
        """Reserve one escalation. Returns None when granted, else why it was refused."""
        refused = self._reserve(estimate_usd)
        if refused:
            with self._lock:
                self.refused += 1
                first = self.refused == 1
            if first and self._on_exhausted:
                self._on_exhausted(refused)
        return refused

    def _reserve(self, estimate_usd: float) -> str | None:
        with self._lock:
            if self.spec.max_escalations is not None and self.escalations >= self.spec.max_escalations:
                return f"budget exhausted: {self.escalations}/{self.spec.max_escalations} escalations used"
            committed = self.spent_usd + self.reserved_usd
            if self.spec.max_usd is not None and committed + estimate_usd > self.spec.max_usd:
                return (
                    f"budget exhausted: ${committed:.6f} committed + ${estimate_usd:.6f} "
                    f"estimated > ${self.spec.max_usd:.6f}"
                )
            self.escalations += 1
            self.reserved_usd += estimate_usd
            return None

    def settle(self, estimate_usd: float, actual_usd: float) -> None:
        with self._lock:
            self.reserved_usd -= estimate_usd
            self.spent_usd += actual_usd
