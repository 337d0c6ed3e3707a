"""The frontier's requests-per-minute limit, kept as a Prefect global concurrency limit with slot
decay (Prefect's rate limit), so it holds across every flow run talking to the same server."""

from __future__ import annotations

from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectAlreadyExists

from flows.unit import FRONTIER_RATE_LIMIT


def ensure_frontier_rate_limit(rpm: int) -> None:
    """Create the limit, or bring it in line with the configured requests per minute."""
    decay = rpm / 60.0
    with get_client(sync_client=True) as client:
        for attempt in range(2):
            try:
                # Burst of at most one second's worth of requests.
                client.upsert_global_concurrency_limit_by_name(
                    FRONTIER_RATE_LIMIT, limit=max(1, round(decay)), slot_decay_per_second=decay)
                return
            except ObjectAlreadyExists:
                # Prefect's upsert reads, then creates: two runs starting together on a fresh
                # server both create, and the loser sees the winner's limit on its second try.
                if attempt:
                    raise
