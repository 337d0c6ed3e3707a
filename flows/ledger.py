"""The cost ledger: what each task cost, and what the same work would cost on the frontier alone.

The cost model in one place: docs/costs.md. In short, a draft from a fleet engine costs the engine
time it used times what the engine's hardware costs per hour; any other draft (frontier, endpoint
member) costs its tokens at the model's token price (the user's, else LiteLLM's map). The
counterfactual is the request sent to the frontier once, its tokens counted with the frontier's
tokenizer.
"""

from __future__ import annotations

from slmflow.core.prices import count_tokens
from slmflow.core.records import Attempt, CostEntry, Draft, GenerationRequest
from slmflow.core.settings import Settings


class Ledger:
    def __init__(self, settings: Settings, frontier_model: str):
        self.settings = settings
        self.frontier_model = frontier_model
        # Before any unit runs: a frontier nobody priced fails the run here, not after the work.
        self.frontier_price = settings.price_for(frontier_model)
        # Load the frontier's tokenizer once, here: a run's first units would each load it at once.
        count_tokens(frontier_model, settings.price_aliases, messages=[{"role": "user", "content": "ready"}])

    def draft_usd(self, draft: Draft) -> float:
        if draft.engine_s is not None and draft.usd_per_hour is not None:
            return draft.engine_s * draft.usd_per_hour / 3600
        price = self.settings.price_for(draft.model)
        return price.usd(draft.tokens_in, draft.tokens_out) if price else 0.0

    def _frontier_usd(self, tokens_in: int, tokens_out: int) -> float:
        return self.frontier_price.usd(tokens_in, tokens_out) if self.frontier_price else 0.0

    def _frontier_tokens(self, request: GenerationRequest) -> int:
        return count_tokens(
            self.frontier_model, self.settings.price_aliases, messages=[m.model_dump() for m in request.messages]
        )

    def frontier_estimate(self, request: GenerationRequest) -> float:
        """Upper-bound cost of one frontier call, reserved against the budget beforehand."""
        return self._frontier_usd(self._frontier_tokens(request), request.max_tokens)

    def entry(self, attempts: list[Attempt], request: GenerationRequest) -> CostEntry:
        """Actual cost of every attempt; counterfactual = `request` sent to the frontier once. When
        the frontier did answer, its own token counts are used; otherwise the request and the first
        answer are counted with the frontier's tokenizer."""
        usd = sum(self.draft_usd(a.draft) for a in attempts)
        frontier = [a.draft for a in attempts if a.role == "frontier"]
        if frontier:
            counterfactual = self._frontier_usd(frontier[0].tokens_in, frontier[0].tokens_out)
        elif attempts:
            answer = count_tokens(self.frontier_model, self.settings.price_aliases, text=attempts[0].draft.text)
            counterfactual = self._frontier_usd(self._frontier_tokens(request), answer)
        else:
            counterfactual = 0.0
        unpriced = {self.frontier_model} if self.frontier_price is None else set()
        unpriced |= {
            a.draft.model
            for a in attempts
            if a.draft.engine_s is None and self.settings.price_for(a.draft.model) is None
        }
        return CostEntry(
            tokens_in=sum(a.draft.tokens_in for a in attempts),
            tokens_out=sum(a.draft.tokens_out for a in attempts),
            usd=usd,
            counterfactual_usd=counterfactual,
            frontier_usd=sum(self.draft_usd(d) for d in frontier),
            unpriced=sorted(unpriced),
        )
