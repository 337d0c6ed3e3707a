"""Placement decisions on a real Ray cluster that declares GPUs this CPU machine does not have
(`ray.init(num_gpus=4)`): which GPU each replica gets (`ray.get_gpu_ids()`, CUDA_VISIBLE_DEVICES),
the placement group of a tensor-parallel replica and the GPUs its shards would get, the memory share
of engines packed on one GPU, a fleet refused because it does not fit, an endpoint member, routing
by load, and the engine counters on Ray's metrics endpoint. The engines are the null engine: what is
under test is where they go, not CUDA (the GPU path is the same code; README, GPU check).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from slmflow.core.records import GenerationRequest, Message
from tests.support.openai_server import ScriptedOpenAIServer
from tests.support.ports import free_ports
from workers.cluster import ENGINE_RESOURCE

# ray.init(num_gpus=...) in this process: only where no session fleet started Ray first.
pytestmark = pytest.mark.own_cluster

DELAY_S = 0.3


def _answer(request: dict) -> str:
    return (request.get("structured_outputs") or {}).get("choice", ["remote answer"])[0]


@pytest.fixture(scope="module")
def endpoint():
    with ScriptedOpenAIServer(_answer, model="team-b/small-1b") as server:
        yield server


@pytest.fixture(scope="module")
def gpu_fleet(endpoint, settings):
    import ray

    from workers.fleet import Fleet

    if ray.is_initialized():
        pytest.skip("a Ray cluster is already running in this session (scripts/pytest.sh runs own_cluster tests first)")
    temp = Path(tempfile.mkdtemp(prefix="slmfp-"))  # short: Ray's socket paths must stay < 107 bytes
    port = free_ports(1)[0]
    fleet_file = temp / "fleet.yaml"
    fleet_file.write_text(
        yaml.safe_dump(
            {
                "small": [
                    {
                        "name": "sharded",
                        "model": "null",
                        "num_gpus": 2,
                        "engine_args": {"tensor_parallel_size": 2},
                        "kinds": ["answer"],
                    },
                    {
                        "name": "halves",
                        "model": "null",
                        "num_gpus": 0.5,
                        "replicas": 2,
                        "kinds": ["classify", "extract"],
                    },
                    {"name": "cpu", "model": "null", "kinds": ["tool_call"]},
                    {
                        "name": "remote",
                        "model": endpoint.model,
                        "base_url": endpoint.base_url,
                        "structured_output": "vllm",
                        "kinds": ["answer"],
                    },
                ]
            }
        )
    )
    # The endpoint member is priced by its tokens, as the small model LiteLLM lists nearest to it.
    aliases = {**settings.price_aliases, endpoint.model: "gpt-4o-mini"}
    local = settings.model_copy(
        update={"fleet_file": fleet_file, "ray_namespace": "slmflow-placement", "price_aliases": aliases}
    )
    # Ray's workers inherit the environment the cluster starts with.
    os.environ["SLMFLOW_NULL_DELAY_S"] = str(DELAY_S)
    ray.init(
        address="local",
        num_gpus=4,
        resources={ENGINE_RESOURCE: 1},
        include_dashboard=False,
        namespace=local.ray_namespace,
        _temp_dir=str(temp / "ray"),
        _metrics_export_port=port,
        _system_config={"metrics_report_interval_ms": 1000},
        log_to_driver=False,
    )
    fleet = Fleet.connect(local)
    fleet.wait_ready()
    try:
        yield fleet, local, f"http://127.0.0.1:{port}/metrics"
    finally:
        fleet.shutdown()
        ray.shutdown()
        os.environ.pop("SLMFLOW_NULL_DELAY_S", None)
        shutil.rmtree(temp, ignore_errors=True)


def _stats(actor) -> dict:
    import ray

    return ray.get(actor.stats.remote(), timeout=30)


def _named(fleet, name: str):
    import ray

    return ray.get_actor(name, namespace="slmflow-placement")


def test_each_replica_gets_the_gpus_its_engine_arguments_call_for(gpu_fleet):
    import ray
    from ray.util import get_placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    fleet, _, _ = gpu_fleet
    halves = [_stats(_named(fleet, f"small:halves:{n}")) for n in (0, 1)]
    # Two engines with half a GPU each share one GPU, and each asks vLLM for half the memory.
    assert halves[0]["gpus"] == halves[1]["gpus"] and len(halves[0]["gpus"]) == 1
    assert halves[0]["cuda_visible_devices"] == halves[1]["cuda_visible_devices"] == halves[0]["gpus"][0]
    assert halves[0]["gpu_memory_utilization"] == pytest.approx(0.425)

    sharded = _stats(_named(fleet, "small:sharded:0"))
    # The actor holds no GPU itself; it runs in a group of one bundle per shard, where vLLM's Ray
    # executor starts one worker per bundle with num_gpus=1.
    assert sharded["gpus"] == [] and sharded["placement_group"] == [{"GPU": 1.0}, {"GPU": 1.0}]
    assert sharded["gpu_memory_utilization"] == 0.85
    group = get_placement_group("slmflow-small:sharded:0")

    @ray.remote(num_gpus=1, num_cpus=0)
    def shard() -> str:
        return os.environ["CUDA_VISIBLE_DEVICES"]

    shards = ray.get(
        [
            shard.options(
                scheduling_strategy=PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=i)
            ).remote()
            for i in (0, 1)
        ]
    )
    assert len(set(shards)) == 2 and halves[0]["gpus"][0] not in shards

    assert _stats(_named(fleet, "small:cpu:0"))["gpus"] == []
    remote = _stats(_named(fleet, "small:remote:0"))
    assert remote["gpus"] == [] and remote["endpoint"].startswith("http://127.0.0.1:")
    assert ray.available_resources().get("GPU", 0) == pytest.approx(4 - 0.5 * 2 - 2)


def test_a_fleet_that_does_not_fit_is_refused_before_any_actor_starts(gpu_fleet, tmp_path):
    import ray

    from workers.fleet import Fleet, FleetError

    _, local, _ = gpu_fleet
    fleet_file = tmp_path / "big.yaml"
    big = {"name": "huge", "model": "null", "num_gpus": 8, "engine_args": {"tensor_parallel_size": 8}}
    fleet_file.write_text(yaml.safe_dump({"small": [big]}))
    with pytest.raises(FleetError) as err:
        Fleet.connect(local.model_copy(update={"fleet_file": fleet_file}))
    assert "huge needs 8 GPUs on one node" in str(err.value)
    assert "missing in all: 4 GPU (the fleet needs 8, the cluster has 4)" in str(err.value)
    with pytest.raises(ValueError):
        ray.get_actor("small:huge:0", namespace=local.ray_namespace)


def test_requests_spread_by_load_and_endpoint_members_answer(gpu_fleet, endpoint):
    from workers.remote import RayWorkers

    fleet, _, _ = gpu_fleet
    workers = RayWorkers(fleet)
    request = GenerationRequest(kind="classify", choices=["a", "b"], messages=[Message(role="user", content="?")])
    before = [_stats(_named(fleet, f"small:halves:{n}"))["served"] for n in (0, 1)]
    drafts = []
    threads = [threading.Thread(target=lambda: drafts.append(workers.small(request))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    after = [_stats(_named(fleet, f"small:halves:{n}"))["served"] for n in (0, 1)]
    assert len(drafts) == 8 and [a - b for a, b in zip(after, before)] == [4, 4]
    # Engine time is shared by the requests in flight together; the null engine's rate is 0.
    assert all(d.engine_s is not None and d.usd_per_hour == 0 for d in drafts)

    answers = {
        workers.small(GenerationRequest(kind="answer", messages=[Message(role="user", content="hi")])).model
        for _ in range(4)
    }
    assert answers == {"null-engine (no inference)", endpoint.model}


def test_engine_counters_reach_rays_metrics_endpoint(gpu_fleet):
    from prometheus_client.parser import text_string_to_metric_families

    fleet, _, url = gpu_fleet
    served = {n: _stats(_named(fleet, f"small:halves:{n}"))["served"] for n in (0, 1)}
    deadline = time.monotonic() + 30
    while True:
        text = urllib.request.urlopen(url, timeout=10).read().decode()
        counts = {
            s.labels["replica"]: s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == "ray_slmflow_engine_requests_total" and s.labels.get("member") == "halves"
        }
        if counts == {f"small:halves:{n}": served[n] for n in (0, 1)} or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert counts == {f"small:halves:{n}": served[n] for n in (0, 1)}, json.dumps(counts)
    busy = [
        s
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "ray_slmflow_engine_busy_seconds_total" and s.labels.get("member") == "halves"
    ]
    assert busy and all(s.value > 0 for s in busy)


def test_status_rows_use_public_ray_apis(gpu_fleet):
    from workers.fleet import fleet_status

    _, local, _ = gpu_fleet
    rows = {r["actor"]: r for r in fleet_status(local)}
    assert {r["state"] for r in rows.values()} == {"ALIVE"}
    # No dashboard here, so no state API: the actor says whether it restarted; the count is unknown.
    assert rows["small:halves:0"]["restarted"] is False and rows["small:halves:0"]["restarts"] is None
    assert rows["small:sharded:0"]["placement_group"] == [{"GPU": 1.0}, {"GPU": 1.0}]
