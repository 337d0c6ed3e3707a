"""Serving bookkeeping around an engine: the bound on requests in flight, the counters `slmflow
status` and the metrics show (in flight, served, tokens), and the engine time each request used
(for its cost, docs/costs.md).

The bound is here rather than in Ray's `max_concurrency` because requests also arrive in lists
(workers.coalesce): one actor call may carry a hundred. Requests past the bound wait in the actor,
not in the engine, and are charged nothing while they wait.

Engine time is shared: a batched engine serves all its requests at once, so over any stretch of
time each request in flight is charged that stretch divided by how many there are. A request alone
pays its whole latency; one of 32 batched together pays about 1/32 of it. Idle time is charged to
nobody. Summed over requests, the charges equal the time the replica was busy.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from slmflow.core.records import Draft, GenerationRequest
from workers.engines import Engine
from workers.metrics import EngineMetrics


class ServedEngine:
    def __init__(
        self,
        engine: Engine,
        max_in_flight: int = 256,
        usd_per_hour: float | None = None,
        metrics: EngineMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        """`usd_per_hour`: what the replica's hardware costs, stamped on each draft with its engine
        time; None for an engine whose drafts are priced by tokens (an endpoint)."""
        self.engine = engine
        self.max_in_flight = max_in_flight
        self.usd_per_hour = usd_per_hour
        self.metrics = metrics
        self.in_flight = 0
        self.served = 0
        self.tokens_out = 0
        self.busy_s = 0.0
        self._slots: asyncio.Semaphore | None = None  # made in the actor's event loop
        self._clock = clock
        self._mark = clock()
        # Seconds charged to each request in flight since the replica started: a request's share
        # is the difference between this at its end and at its start.
        self._per_request_s = 0.0

    def _advance(self) -> None:
        now = self._clock()
        if self.in_flight:
            self.busy_s += now - self._mark
            self._per_request_s += (now - self._mark) / self.in_flight
        self._mark = now

    async def generate(self, request: GenerationRequest) -> Draft:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_in_flight)
        async with self._slots:
            self._advance()
            start = self._per_request_s
            self.in_flight += 1
            self._report()
            try:
                draft = await self.engine.generate(request)
            finally:
                self._advance()
                self.in_flight -= 1
                self._report()
        engine_s = self._per_request_s - start
        self.served += 1
        self.tokens_out += draft.tokens_out
        if self.metrics:
            self.metrics.served(draft, engine_s)
        if self.usd_per_hour is None:
            return draft
        return draft.model_copy(update={"engine_s": engine_s, "usd_per_hour": self.usd_per_hour})

    def _report(self) -> None:
        if self.metrics:
            self.metrics.in_flight(self.in_flight)

    def stats(self) -> dict[str, int | float | str]:
        self._advance()
        return {
            "model": self.engine.model,
            "in_flight": self.in_flight,
            "served": self.served,
            "tokens_out": self.tokens_out,
            "busy_s": round(self.busy_s, 3),
        }
