"""The fleet as the flow calls it: the `Workers` methods (search, small, frontier, verify) as Ray actor
calls on the fleet's actors."""

from __future__ import annotations

import threading
from typing import Any

from pydantic import BaseModel

from slmflow.core.records import Draft, Evidence, GenerationRequest, Verdict, VerifyRequest
from workers import wire
from workers.coalesce import Coalescer

GENERATE_TIMEOUT_S = 900


def _call(method, *args, timeout: float):
    """Call an actor method so that the call survives the actor's restart: Ray resubmits it once
    the actor is back (at-least-once). Ray's default is at-most-once, and then a call made while a
    restarted engine reloads its model fails at once, so Prefect's retries, seconds apart, run out
    long before the model is back (tests/integration/test_reliability.py, model-reload). Running
    a call twice is harmless here: generation, search and verification have no side effects, and
    a repeated frontier call costs one more request. A worker gone for good (its max_restarts
    spent) still fails the call, and `timeout` bounds the wait."""
    import ray  # not at module import: the Ray environment is applied first (workers.cluster)

    return ray.get(method.options(max_task_retries=-1).remote(*args), timeout=timeout)


class RayWorkers:
    """Workers backed by the fleet's Ray actors. Requests go to the replica that serves their kind
    with the fewest in flight (`Fleet.lease`); the frontier's rate limit is the flow's business
    (flows.ratelimit).

    Drafts and verdicts, the calls every unit makes, go through one `Coalescer` per actor, so many
    units in flight cost one actor call per crowd rather than one each; the list call survives an
    actor restart like a single call (`_call`)."""

    def __init__(self, fleet: Any):
        self.fleet = fleet
        self._coalescers: dict[tuple[int, str], Coalescer] = {}
        self._lock = threading.Lock()

    def search(self, collection: str, query: str, k: int) -> list[Evidence]:
        return _call(self.fleet.retrieval.search, collection, query, k, timeout=120)

    def small(self, request: GenerationRequest) -> Draft:
        # Counted in flight from here until its draft is back, the coalesced wait included.
        with self.fleet.lease(request.kind) as actor:
            return self._coalesced(actor, "generate_many", Draft).call(request, timeout=GENERATE_TIMEOUT_S)

    def frontier(self, request: GenerationRequest) -> Draft:
        return _call(self.fleet.frontier.generate, request, timeout=GENERATE_TIMEOUT_S)

    def verify(self, request: VerifyRequest) -> Verdict:
        return self._coalesced(self.fleet.verifier, "verify_many", Verdict).call(request, timeout=120)

    def _coalesced(self, actor: Any, method: str, answer: type[BaseModel]) -> Coalescer:
        key = (id(actor), method)  # the fleet holds its handles for the process's life
        with self._lock:
            if key not in self._coalescers:
                remote = getattr(actor, method).options(max_task_retries=-1)
                self._coalescers[key] = Coalescer(
                    lambda batch: remote.remote(wire.dump_requests(batch)),
                    decode=lambda result: wire.load_answer(answer, result),
                )
            return self._coalescers[key]
