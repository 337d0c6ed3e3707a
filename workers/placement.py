"""Where a fleet member's replicas go, derived from its engine arguments, and whether the fleet fits.

One rule set, used by the fleet when it creates actors (`Fleet.connect`), by `fit_problems` before
it does, and by the KubeRay renderer (`slmflow.cli.infra`), so the three cannot disagree:

- a CPU engine (`num_gpus: 0`) takes one engine slot, the custom resource `slmflow_engine`;
- one GPU or a share of one (`num_gpus: 1`, `0.5`): the actor asks Ray for it, and a share also
  caps vLLM's memory at that share of `gpu_memory_utilization`, so two engines packed on one GPU
  do not both ask for 85 % of it;
- tensor or pipeline parallel (`tensor_parallel_size × pipeline_parallel_size = N > 1`): the actor
  asks for no GPU itself and runs in a placement group of N `{"GPU": 1}` bundles, where vLLM's Ray
  executor starts one worker per bundle (it refuses a bundle with more than one GPU);
- an endpoint member asks for nothing: its model runs elsewhere.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel

from workers.cluster import ENGINE_RESOURCE

GPU = "GPU"


class Placement(BaseModel):
    """What one replica of a fleet member asks of the Ray cluster."""

    member: str
    gpus: float = 0  # on one node: N whole GPUs for a parallel engine, a share, or 0
    bundles: list[dict[str, float]] = []  # placement group, one {"GPU": 1} per shard; [] = none
    # Tensor parallel shards talk over NVLink/PCIe on every step: one node. Pipeline stages pass
    # activations once per step and may span nodes.
    strategy: Literal["STRICT_PACK", "PACK"] = "STRICT_PACK"
    resources: dict[str, float] = {}  # custom resources (a CPU engine slot)
    memory_share: float | None = None  # vLLM's gpu_memory_utilization; None on CPU and endpoints

    @property
    def whole_gpus(self) -> int:
        return int(self.gpus) if self.gpus >= 1 else 0

    def actor_options(self, placement_group: Any = None) -> dict[str, Any]:
        """Ray options for the replica's actor; `placement_group` is the replica's own when it has
        bundles. Child tasks are captured so that vLLM's workers land in its bundles."""
        if self.bundles:
            from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

            strategy = PlacementGroupSchedulingStrategy(
                placement_group=placement_group, placement_group_capture_child_tasks=True
            )
            return {"num_cpus": 0, "num_gpus": 0, "scheduling_strategy": strategy}
        options: dict[str, Any] = {"num_cpus": 0}
        if self.gpus:
            options["num_gpus"] = self.gpus
        if self.resources:
            options["resources"] = dict(self.resources)
        return options

    def describe(self) -> str:
        if self.bundles:
            where = "one node" if self.strategy == "STRICT_PACK" else "any nodes"
            return f"{len(self.bundles)} GPUs on {where} (a placement group of {len(self.bundles)} x 1 GPU)"
        if self.gpus:
            return f"{self.gpus:g} GPU" + ("" if self.gpus >= 1 else " (a share of one GPU)")
        if self.resources:
            return ", ".join(f"{v:g} {k}" for k, v in self.resources.items())
        return "nothing"


def world_size(engine_args: Mapping[str, Any]) -> int:
    """GPUs one engine uses: tensor x pipeline parallel shards."""
    return int(engine_args.get("tensor_parallel_size") or 1) * int(engine_args.get("pipeline_parallel_size") or 1)


def placement(
    member: str, num_gpus: float, engine_args: Mapping[str, Any], default_share: float, endpoint: bool = False
) -> Placement:
    """The Ray resources of one replica. `default_share` is vLLM's gpu_memory_utilization for an
    engine with a whole GPU (settings.vllm); a fractional GPU gets that much of its fraction unless
    engine_args set it."""
    if endpoint:
        return Placement(member=member)
    if num_gpus == 0:
        return Placement(member=member, resources={ENGINE_RESOURCE: 1})
    share = engine_args.get("gpu_memory_utilization")
    if share is None:
        share = default_share * min(num_gpus, 1)
    world = world_size(engine_args)
    if world > 1:
        pipeline = int(engine_args.get("pipeline_parallel_size") or 1) > 1
        return Placement(
            member=member,
            gpus=world,
            bundles=[{GPU: 1.0} for _ in range(world)],
            strategy="PACK" if pipeline else "STRICT_PACK",
            memory_share=share,
        )
    return Placement(member=member, gpus=num_gpus, memory_share=share)


def check_gpus(member: str, num_gpus: float, engine_args: Mapping[str, Any]) -> list[str]:
    """Why `num_gpus` does not match what the engine will use ([]: it does)."""
    world = world_size(engine_args)
    problems = []
    if int(engine_args.get("data_parallel_size") or 1) > 1:
        problems.append("engine_args.data_parallel_size: use `replicas` (one engine per replica, routed by the fleet)")
    if num_gpus > 1 and not float(num_gpus).is_integer():
        # Ray gives fractions only below one GPU; 1.5 would fail at actor creation.
        problems.append(f"num_gpus {num_gpus:g}: above 1 it must be whole (one GPU per shard)")
    elif world > 1 and num_gpus != world:
        problems.append(
            f"num_gpus is {num_gpus:g}, but tensor_parallel_size x pipeline_parallel_size = {world}: "
            f"set num_gpus: {world} (one GPU per shard)"
        )
    elif world == 1 and num_gpus > 1:
        problems.append(
            f"num_gpus {num_gpus:g} reserves {num_gpus:g} GPUs for an engine that uses one: set "
            f"engine_args.tensor_parallel_size: {num_gpus:g} to shard the model, or num_gpus: 1"
        )
    share = engine_args.get("gpu_memory_utilization")
    if share is not None and 0 < num_gpus < 1 and share > num_gpus:
        problems.append(
            f"engine_args.gpu_memory_utilization {share:g} is more than the {num_gpus:g} GPU this member shares: "
            f"at most {num_gpus:g}, or leave it out to get {num_gpus:g} x the default"
        )
    return problems


# --- does the fleet fit the cluster? --------------------------------------------------------------


class _Node:
    def __init__(self, resources: Mapping[str, float]):
        self.gpus = [1.0] * int(resources.get(GPU, 0))
        self.custom = {k: float(v) for k, v in resources.items() if k not in (GPU, "CPU", "memory")}

    def take(self, p: Placement) -> bool:
        if any(self.custom.get(k, 0) < v for k, v in p.resources.items()):
            return False
        if p.whole_gpus:
            free = [i for i, left in enumerate(self.gpus) if left == 1.0][: p.whole_gpus]
            if len(free) < p.whole_gpus:
                return False
            for i in free:
                self.gpus[i] = 0.0
        elif p.gpus:
            # Ray packs fractions onto one GPU instance; the first with room, as here.
            slot = next((i for i, left in enumerate(self.gpus) if left + 1e-9 >= p.gpus), None)
            if slot is None:
                return False
            self.gpus[slot] -= p.gpus
        for k, v in p.resources.items():
            self.custom[k] -= v
        return True


def fit_problems(replicas: Iterable[Placement], nodes: Iterable[Mapping[str, float]]) -> list[str]:
    """Place every replica on the nodes (each node's total resources, as `ray.nodes()` reports
    them), biggest first; one line per replica that finds no room, naming its member and what is
    missing. [] when the whole fleet fits."""
    cluster = [_Node(n) for n in nodes]
    wanted = sorted(replicas, key=lambda p: (p.whole_gpus, p.gpus, sum(p.resources.values())), reverse=True)
    unplaced = [p for p in wanted if (p.gpus or p.resources) and not any(node.take(p) for node in cluster)]
    if not unplaced:
        return []
    need: defaultdict[str, float] = defaultdict(float)
    for p in wanted:
        need[GPU] += p.gpus
        for k, v in p.resources.items():
            need[k] += v
    have: defaultdict[str, float] = defaultdict(float)
    for node in nodes:
        for k in need:
            have[k] += float(node.get(k, 0))
    most_gpus = max((float(n.get(GPU, 0)) for n in nodes), default=0)
    lines = []
    for p in unplaced:
        line = f"{p.member} needs {p.describe()}"
        if p.whole_gpus > 1 and p.strategy == "STRICT_PACK":
            line += f"; the largest node has {most_gpus:g} GPUs"
        lines.append(line)
    missing = {k: need[k] - have.get(k, 0) for k in need if need[k] > have.get(k, 0) + 1e-9}
    if missing:
        lines.append(
            "missing in all: "
            + ", ".join(
                f"{v:g} {k} (the fleet needs {need[k]:g}, the cluster has {have.get(k, 0):g})"
                for k, v in missing.items()
            )
        )
    return lines
