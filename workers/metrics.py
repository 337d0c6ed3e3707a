"""Prometheus metrics through Ray's metrics agent (`ray.util.metrics`).

Ray serves them with every other Ray and vLLM metric on the node's metrics export port
(`slmflow up` binds it to 127.0.0.1:`SLMFLOW_METRICS_PORT`; `slmflow status` says where), named
`ray_<name>` and counters `ray_<name>_total`. infra/grafana/slmflow.json charts them.

- Per engine replica, recorded in its actor: requests in flight, requests and tokens served, and the
  engine seconds they used (`rate()` of the last is the replica's utilisation). vLLM's own engine
  metrics (running and waiting requests, KV-cache use, tokens) come from its Ray stat logger,
  which the actor hands the engine (`ray_vllm_*`).
- Per finished unit, recorded by the flow process: outcome counts per job, kind and status, and its
  cost, frontier spend and all-frontier counterfactual in USD. Ray keeps a process's counters
  after it exits, so a short flow run is still counted.

Outside a Ray worker or driver (unit tests, plain scripts) every call here is a no-op.
"""

from __future__ import annotations

import functools
import logging
import sys
from typing import Any

from slmflow.core.records import Draft, TaskResult

ENGINE_IN_FLIGHT = "slmflow_engine_requests_in_flight"
ENGINE_REQUESTS = "slmflow_engine_requests"
ENGINE_TOKENS = "slmflow_engine_generated_tokens"
ENGINE_PROMPT_TOKENS = "slmflow_engine_prompt_tokens"
ENGINE_SECONDS = "slmflow_engine_busy_seconds"
UNITS = "slmflow_units"
COST_USD = "slmflow_cost_usd"
FRONTIER_USD = "slmflow_frontier_usd"
COUNTERFACTUAL_USD = "slmflow_counterfactual_usd"

ENGINE_TAGS = ("member", "replica", "model")
UNIT_TAGS = ("job", "kind", "status")
COST_TAGS = ("job",)

log = logging.getLogger(__name__)


def _ray_ready() -> bool:
    ray = sys.modules.get("ray")  # never the first to import Ray (workers.cluster applies its env first)
    return bool(ray and ray.is_initialized())


@functools.cache
def _metric(kind: str, name: str, description: str, tag_keys: tuple[str, ...]) -> Any:
    from ray.util import metrics

    return getattr(metrics, kind)(name, description=description, tag_keys=tag_keys)


def _safe(record):
    """Metrics must never fail a request or a unit: a Ray without a metrics agent (e.g. a Ray
    Client connection) logs once and records nothing."""

    warned = False

    @functools.wraps(record)
    def wrapper(*args, **kwargs):
        nonlocal warned
        if not _ray_ready():
            return
        try:
            record(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - see above
            if not warned:
                warned = True
                log.warning("metrics not recorded: %s: %s", type(exc).__name__, exc)

    return wrapper


class EngineMetrics:
    """One replica's counters; the tags say which member, replica and model."""

    def __init__(self, member: str, replica: str, model: str):
        self.tags = {"member": member, "replica": replica, "model": model}

    @_safe
    def in_flight(self, n: int) -> None:
        _metric("Gauge", ENGINE_IN_FLIGHT, "requests a replica is serving now", ENGINE_TAGS).set(n, tags=self.tags)

    @_safe
    def served(self, draft: Draft, engine_s: float) -> None:
        _metric("Counter", ENGINE_REQUESTS, "requests a replica answered", ENGINE_TAGS).inc(1, tags=self.tags)
        if draft.tokens_out:
            _metric("Counter", ENGINE_TOKENS, "tokens a replica generated", ENGINE_TAGS).inc(
                draft.tokens_out, tags=self.tags
            )
        if draft.tokens_in:
            _metric("Counter", ENGINE_PROMPT_TOKENS, "prompt tokens a replica read", ENGINE_TAGS).inc(
                draft.tokens_in, tags=self.tags
            )
        if engine_s > 0:
            _metric(
                "Counter", ENGINE_SECONDS, "seconds a replica was busy, shared among its requests", ENGINE_TAGS
            ).inc(engine_s, tags=self.tags)


@_safe
def unit_finished(result: TaskResult) -> None:
    """Count one finished unit (item x task) and what it cost. The flow calls this once per unit."""
    _metric("Counter", UNITS, "finished units by job, kind and outcome", UNIT_TAGS).inc(
        1, tags={"job": result.job, "kind": result.kind, "status": result.status.value}
    )
    job = {"job": result.job}
    for name, value, what in (
        (COST_USD, result.cost.usd, "what units cost, small model and frontier, USD"),
        (FRONTIER_USD, result.cost.frontier_usd, "frontier spend, USD"),
        (COUNTERFACTUAL_USD, result.cost.counterfactual_usd, "the same units on the frontier alone, USD"),
    ):
        if value > 0:
            _metric("Counter", name, what, COST_TAGS).inc(value, tags=job)
