"""Retrying a call the way Prefect retries a unit's task run, for units that run as plain calls in a
batch: an exception (an infrastructure fault) is tried again after a delay; a verdict is a return
value and never is."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

DELAYS_S = (1.0, 5.0)  # the unit task's retry_delay_seconds


def retrying(fn: Callable[[], T], retries: int, delays: tuple[float, ...] = DELAYS_S) -> T:
    for attempt in range(retries + 1):
        try:
            return fn()
        except Exception:
            if attempt == retries:
                raise
            time.sleep(delays[min(attempt, len(delays) - 1)])
    raise AssertionError("unreachable")
