"""Serving bookkeeping around an engine: requests in flight and served, for `slmflow status`."""

from __future__ import annotations

from slmflow.core.records import Draft, GenerationRequest
from workers.engines import Engine


class ServedEngine:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.in_flight = 0
        self.served = 0
        self.tokens_out = 0

    async def generate(self, request: GenerationRequest) -> Draft:
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
