"""The names of the states a unit, an agent step or a job run ends in besides plain Completed: Prefect
shows them as badges and names its events after them (`prefect.flow-run.NeedsReview`), and the retry
rule tells them from faults."""

from __future__ import annotations

from typing import Any

from prefect.states import Completed, State

NEEDS_REVIEW = "NeedsReview"  # a unit: a failed state, nothing passed verification; a run: units await review
INPUT_REJECTED = "InputRejected"  # a failed state: the engine refused the input (e.g. too long)
ESCALATED = "Escalated"  # a completed state: the frontier's answer passed verification
INCOMPLETE = "Incomplete"  # a run: some units failed or were blocked, none awaits review
REVIEWED = "Reviewed"  # a run: every unit it left for review has been decided


def retry_on_exceptions_only(task: Any, task_run: Any, state: State) -> bool:
    # A verdict or a rejected input is not a fault: retrying would only spend money again.
    return state.name not in (NEEDS_REVIEW, INPUT_REJECTED)


def run_state(counts: dict[str, int], data: Any) -> State:
    """A job run's final state: plain Completed only when every unit is verified. A run that
    leaves units for review says so; it is still a completed type (the run did its work, and
    nothing would be gained by retrying it)."""
    review, failed, blocked = counts.get("needs_review", 0), counts.get("failed", 0), counts.get("blocked", 0)
    if review:
        waiting = f", {blocked} blocked on them or on failures" if blocked else ""
        return Completed(name=NEEDS_REVIEW, data=data, message=f"{review} units await review{waiting}")
    if failed or blocked:
        return Completed(name=INCOMPLETE, data=data, message=f"{failed} units failed, {blocked} blocked")
    return Completed(data=data, message="every unit verified")
