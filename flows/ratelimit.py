"""The frontier's requests-per-minute limit, kept as a Prefect global concurrency limit with slot
decay (Prefect's rate limit), so it holds across every flow run talking to the same server."""

from __future__ import annotations

from prefect.client.orchestration import get_client
from prefect.concurrency.sync import rate_limit
from prefect.exceptions import ObjectAlreadyExists

from flows.cascade import Workers
from slmflow.core.records import Draft, GenerationRequest

FRONTIER_RATE_LIMIT = "slmflow-frontier"


def ensure_frontier_rate_limit(rpm: int) -> None:
    """Create the limit, or bring it in line with the configured requests per minute."""
    decay = rpm / 60.0
    with get_client(sync_client=True) as client:
        for attempt in range(2):
            try:
                # Burst of at most one second's worth of requests.
                client.upsert_global_concurrency_limit_by_name(
                    FRONTIER_RATE_LIMIT, limit=max(1, round(decay)), slot_decay_per_second=decay
                )
                return
            except ObjectAlreadyExists:
                # Prefect's upsert reads, then creates: two runs starting together on a fresh
                # server both create, and the loser sees the winner's limit on its second try.
                if attempt:
                    raise


class RateLimited:
    """`workers` whose frontier calls first take a slot of the Prefect rate limit, so every
    concurrent flow on the same Prefect server shares one requests-per-minute budget."""

    def __init__(self, workers: Workers):
        self._workers = workers

    def frontier(self, request: GenerationRequest) -> Draft:
        rate_limit(FRONTIER_RATE_LIMIT, strict=True)
        return self._workers.frontier(request)

    def __getattr__(self, name: str):
        return getattr(self._workers, name)
