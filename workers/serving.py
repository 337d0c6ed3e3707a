"""Serving bookkeeping around an engine: the bound on requests in flight, and the counters
`slmflow status` shows (in flight, served, tokens).

The bound is here rather than in Ray's `max_concurrency` because requests also arrive in lists
(workers.coalesce): one actor call may carry a hundred. Requests past the bound wait in the actor,
not in the engine.
"""

from __future__ import annotations

import asyncio

from slmflow.core.records import Draft, GenerationRequest
from workers.engines import Engine


class ServedEngine:
    def __init__(self, engine: Engine, max_in_flight: int = 256):
        self.engine = engine
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self.served = 0
        self.tokens_out = 0
        self._slots: asyncio.Semaphore | None = None  # made in the actor's event loop

    async def generate(self, request: GenerationRequest) -> Draft:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_in_flight)
        async with self._slots:
            self.in_flight += 1
            try:
                draft = await self.engine.generate(request)
            finally:
                self.in_flight -= 1
        self.served += 1
        self.tokens_out += draft.tokens_out
        return draft

    def stats(self) -> dict[str, int | str]:
        return {
            "model": self.engine.model,
            "in_flight": self.in_flight,
            "served": self.served,
            "tokens_out": self.tokens_out,
        }
