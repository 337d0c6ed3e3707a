"""The cost ledger: what each task cost, and what the same work would cost on the frontier alone."""

from __future__ import annotations

from slmflow.core.records import Attempt, CostEntry, Draft
from slmflow.core.settings import Settings


class Ledger:
    def __init__(self, settings: Settings, frontier_model: str):
        self.settings = settings
        self.frontier_model = frontier_model

    def draft_usd(self, draft: Draft) -> float:
        return self.settings.price_for(draft.model).usd(draft.tokens_in, draft.tokens_out)

    def frontier_estimate(self, tokens_in: int, max_tokens: int) -> float:
        """Upper-bound cost of one frontier call, reserved against the budget beforehand."""
        return self.settings.price_for(self.frontier_model).usd(tokens_in, max_tokens)

    def entry(self, attempts: list[Attempt]) -> CostEntry:
        """Actual cost of every attempt; counterfactual = the prompt sent to the frontier once.
        When the frontier did answer, its own token counts are used; otherwise the small model's
        counts are the estimate."""
        usd = sum(self.draft_usd(a.draft) for a in attempts)
        basis = next((a.draft for a in attempts if a.role == "frontier"), None) or (
            attempts[0].draft if attempts else None
        )
        counterfactual = (
            self.settings.price_for(self.frontier_model).usd(basis.tokens_in, basis.tokens_out) if basis else 0.0
        )
        return CostEntry(
            tokens_in=sum(a.draft.tokens_in for a in attempts),
            tokens_out=sum(a.draft.tokens_out for a in attempts),
            usd=usd,
            counterfactual_usd=counterfactual,
        )
