"""The names of the states a unit or agent step ends in besides plain Completed: Prefect shows them
as badges, and the retry rule tells them from faults."""

from __future__ import annotations

from typing import Any

from prefect.states import State

NEEDS_REVIEW = "NeedsReview"  # a failed state: nothing passed verification
INPUT_REJECTED = "InputRejected"  # a failed state: the engine refused the input (e.g. too long)
ESCALATED = "Escalated"  # a completed state: the frontier's answer passed verification


def retry_on_exceptions_only(task: Any, task_run: Any, state: State) -> bool:
    # A verdict or a rejected input is not a fault: retrying would only spend money again.
    return state.name not in (NEEDS_REVIEW, INPUT_REJECTED)
