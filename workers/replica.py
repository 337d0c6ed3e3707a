"""What one small-model replica runs, and how its engine is built from that.

The fleet (driver side) turns a fleet member into one `ReplicaSpec` per replica; the actor (Ray side)
builds the engine from it. Plain data, so the actor is a thin wrapper and the choice of engine is
testable without Ray.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from workers.engines import NULL_MODEL, Engine, NullEngine, OpenAIEngine, StructuredMode, VLLMEngine


class ReplicaSpec(BaseModel):
    member: str  # the fleet member's name
    replica: str  # the actor's name, small:<member>:<n>
    model_name: str  # as drafts, prices and reports name it
    model_path: str  # what the engine loads (a folder or a hub id); unused for an endpoint
    kinds: list[str]
    max_in_flight: int = 256  # requests the engine serves at once; the rest wait in the actor
    engine_args: dict[str, Any] = {}  # vLLM AsyncEngineArgs, defaults and the member's own merged
    env: dict[str, str] = {}  # set in the actor before the engine starts
    kv_cache_gib: int = 1
    usd_per_hour: float | None = None  # the replica's hardware; None: priced by tokens (an endpoint)
    base_url: str | None = None  # an endpoint member: the model is served there, not here
    structured_output: StructuredMode = "json_schema"
    timeout_s: float = 60.0

    @property
    def parallel(self) -> bool:
        """vLLM shards the model over Ray workers of its own (tensor or pipeline parallel)."""
        return self.engine_args.get("distributed_executor_backend") == "ray"


def build_engine(spec: ReplicaSpec, api_key: str | None = None, stat_loggers: list[Any] | None = None) -> Engine:
    if spec.base_url:
        return OpenAIEngine(
            spec.base_url, spec.model_path, api_key, timeout_s=spec.timeout_s, structured=spec.structured_output
        )
    if spec.model_path == NULL_MODEL:
        return NullEngine()
    return VLLMEngine(
        spec.model_path, spec.model_name, spec.engine_args, kv_cache_gib=spec.kv_cache_gib, stat_loggers=stat_loggers
    )
