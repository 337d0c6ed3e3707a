"""Render the KubeRay worker groups a fleet needs, from the same placement the fleet asks Ray for.

`SmallModelSpec.placement()` (workers/placement.py) is what each small-model replica requests from
Ray: GPUs (a share of one, one, or one per tensor-parallel shard, all on one node), or a CPU engine
slot; the worker groups here are what the cluster must advertise for every replica to be placed. Rendering one from the
other keeps `infra/kuberay/raycluster.yaml` honest on machines without GPUs: a test compares the
shipped manifest with what this module renders for `infra/fleet.gpu.yaml`.

Sizing rule: one pod per replica, each pod big enough for the largest replica of its group. Ray may
then place replicas in any order and never strand one (with N pods and N replicas, some pod is
always empty), which a tighter packing cannot promise. Fractional `num_gpus` therefore still costs
a whole GPU here; size such a group by hand if you want models to share a GPU. A tensor-parallel
replica needs its N GPUs on one node, so its pod has N GPUs (and so has every pod of its group).
Endpoint members run no engine and need no pod.

    python -m slmflow.cli.infra infra/fleet.gpu.yaml                                # print the groups
    python -m slmflow.cli.infra infra/fleet.gpu.yaml infra/kuberay/raycluster.yaml  # check a manifest
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import yaml

if TYPE_CHECKING:
    from workers.fleet import FleetConfig

GPU_GROUP = "gpu"
CPU_GROUP = "cpu"
GPU_RESOURCE = "nvidia.com/gpu"
RAY_CONTAINER = "ray-worker"


class WorkerGroup(TypedDict):
    """The part of a KubeRay `WorkerGroupSpec` that the fleet determines (ray.io/v1 field names)."""

    groupName: str
    replicas: int
    minReplicas: int
    maxReplicas: int
    rayStartParams: dict[str, str]
    template: dict[str, Any]


class _Group:
    def __init__(self) -> None:
        self.pods = 0
        self.gpus = 0
        self.custom: dict[str, float] = {}

    def add(self, gpus: int, custom: Mapping[str, float]) -> None:
        self.pods += 1
        self.gpus = max(self.gpus, gpus)
        for name, amount in custom.items():
            self.custom[name] = max(self.custom.get(name, 0), amount)


def _resources_param(custom: Mapping[str, float]) -> str:
    # KubeRay passes rayStartParams through a shell, so `resources` is a JSON object inside a
    # quoted string: '"{\"slmflow_engine\": 1}"'.
    numbers = {k: int(v) if float(v).is_integer() else v for k, v in sorted(custom.items())}
    return json.dumps(json.dumps(numbers))


def _render(name: str, group: _Group) -> WorkerGroup:
    params = {"num-gpus": str(group.gpus)}
    if group.custom:
        params["resources"] = _resources_param(group.custom)
    container: dict[str, Any] = {"name": RAY_CONTAINER}
    if group.gpus:
        # Extended resources go in limits only; Kubernetes copies them to requests.
        container["resources"] = {"limits": {GPU_RESOURCE: str(group.gpus)}}
    return {
        "groupName": name,
        "replicas": group.pods,
        # Replicas are long-lived named actors: a fixed size, so no autoscaler removes their pods.
        "minReplicas": group.pods,
        "maxReplicas": group.pods,
        "rayStartParams": params,
        "template": {"spec": {"containers": [container]}},
    }


def worker_groups(fleet: FleetConfig) -> list[WorkerGroup]:
    """The worker groups (GPU first, then CPU engines) that place every replica of `fleet`."""
    gpu, cpu = _Group(), _Group()
    for replica in fleet.replicas():
        gpus = math.ceil(replica.gpus)
        if gpus or replica.resources:
            (gpu if gpus else cpu).add(gpus, replica.resources)
    return [_render(name, group) for name, group in ((GPU_GROUP, gpu), (CPU_GROUP, cpu)) if group.pods]


def worker_group(fleet: FleetConfig, name: str = GPU_GROUP) -> WorkerGroup:
    """One rendered group by name; KeyError when the fleet needs no such group."""
    for group in worker_groups(fleet):
        if group["groupName"] == name:
            return group
    raise KeyError(f"the fleet needs no {name!r} worker group")


def _parse_resources_param(value: str) -> dict[str, float]:
    parsed = json.loads(value)
    return json.loads(parsed) if isinstance(parsed, str) else parsed


def _container_limits(group: Mapping[str, Any]) -> dict[str, str]:
    containers = group.get("template", {}).get("spec", {}).get("containers") or [{}]
    # KubeRay runs Ray in the first container of the pod template.
    limits = (containers[0].get("resources") or {}).get("limits") or {}
    return {k: str(v) for k, v in limits.items()}


def mismatches(cluster: Mapping[str, Any], fleet: FleetConfig) -> list[str]:
    """How a RayCluster manifest's worker groups differ from what `fleet` needs ([]: they agree)."""
    shipped = {g.get("groupName"): g for g in cluster.get("spec", {}).get("workerGroupSpecs", [])}
    problems: list[str] = []
    for want in worker_groups(fleet):
        name = want["groupName"]
        have = shipped.get(name)
        if have is None:
            problems.append(f"workerGroupSpecs has no group {name!r}")
            continue
        for key in ("replicas", "minReplicas", "maxReplicas"):
            if have.get(key) != want[key]:
                problems.append(f"group {name!r}: {key} is {have.get(key)!r}, the fleet needs {want[key]!r}")
        params = {k: str(v) for k, v in (have.get("rayStartParams") or {}).items()}
        if params.get("num-gpus") != want["rayStartParams"]["num-gpus"]:
            problems.append(
                f"group {name!r}: rayStartParams num-gpus is "
                f"{params.get('num-gpus')!r}, the fleet needs "
                f"{want['rayStartParams']['num-gpus']!r}"
            )
        want_custom = _parse_resources_param(want["rayStartParams"].get("resources", '"{}"'))
        have_custom = _parse_resources_param(params.get("resources", '"{}"'))
        if have_custom != want_custom:
            problems.append(
                f"group {name!r}: rayStartParams resources advertise {have_custom}, the fleet needs {want_custom}"
            )
        want_gpus = _container_limits(want).get(GPU_RESOURCE)
        have_gpus = _container_limits(have).get(GPU_RESOURCE)
        if have_gpus != want_gpus:
            problems.append(
                f"group {name!r}: container limits {GPU_RESOURCE} is {have_gpus!r}, the fleet needs {want_gpus!r}"
            )
    return problems


def load_fleet(path: str | Path) -> FleetConfig:
    from workers.fleet import FleetConfig

    return FleetConfig.model_validate(yaml.safe_load(Path(path).read_text()))


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) not in (1, 2):
        print("usage: python -m slmflow.cli.infra FLEET_YAML [RAYCLUSTER_YAML]", file=sys.stderr)
        return 2
    fleet = load_fleet(args[0])
    if len(args) == 1:
        print(yaml.safe_dump(worker_groups(fleet), sort_keys=False), end="")
        return 0
    cluster = next(
        (d for d in yaml.safe_load_all(Path(args[1]).read_text()) if d and d.get("kind") == "RayCluster"), None
    )
    if cluster is None:
        print(f"{args[1]}: no RayCluster in it", file=sys.stderr)
        return 2
    problems = mismatches(cluster, fleet)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
