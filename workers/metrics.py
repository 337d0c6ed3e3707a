"""Prometheus metrics through Ray's metrics agent (`ray.util.metrics`).

Ray serves them with every other Ray and vLLM metric on the node's metrics export port
(`slmflow up` binds it to 127.0.0.1:`SLMFLOW_METRICS_PORT`; `slmflow status` says where), named
`ray_<name>` and counters `ray_<name>_total`. infra/grafana/slmflow.json charts them.

- Per engine replica, recorded in its actor: requests in flight, requests and tokens served, and the
  engine seconds they used (`rate()` of the last is the replica's utilisation). vLLM's own engine
  metrics (running and waiting requests, KV-cache use, tokens) come from its Ray stat logger,
  which the actor hands the engine (`ray_vllm_*`).
- Per settled unit, recorded by the flow process a few hundred at a time: outcome counts per job,
  kind and status, and its cost, frontier spend and all-frontier counterfactual in USD. Ray keeps
  a process's counters after it exits, so a short flow run is still counted.

Outside a Ray worker or driver (unit tests, plain scripts) every call here is a no-op.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections import Counter, defaultdict
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
COST_HELP = {
    COST_USD: "what units cost, small model and frontier, USD",
    FRONTIER_USD: "frontier spend, USD",
    COUNTERFACTUAL_USD: "the same units on the frontier alone, USD",
}

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
def units_finished(results: list[TaskResult]) -> None:
    """Count settled units (item x task), blocked and failed ones included, and what they cost, in
    one record per tag set. The flow calls this for the units it settled, a few hundred at a time
    (flows.scheduler); units reused from an earlier run were counted by that run."""
    units: Counter[tuple[str, str, str]] = Counter()
    costs: defaultdict[tuple[str, str], float] = defaultdict(float)
    for r in results:
        units[r.job, r.kind, r.status.value] += 1
        costs[r.job, COST_USD] += r.cost.usd
        costs[r.job, FRONTIER_USD] += r.cost.frontier_usd
        costs[r.job, COUNTERFACTUAL_USD] += r.cost.counterfactual_usd
    for (job, kind, status), n in units.items():
        _metric("Counter", UNITS, "finished units by job, kind and outcome", UNIT_TAGS).inc(
            n, tags={"job": job, "kind": kind, "status": status}
        )
    for (job, name), value in costs.items():
        if value > 0:
            _metric("Counter", name, COST_HELP[name], COST_TAGS).inc(value, tags={"job": job})
