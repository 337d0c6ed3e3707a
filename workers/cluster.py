"""Connect to Ray: an existing cluster when RAY_ADDRESS is set, else a private local one."""

from __future__ import annotations

import os

import ray

from slmflow.settings import Settings

# Custom resource that stands for "room for one model engine" on CPU-only nodes, where
# num_gpus cannot express it. One engine per 2-core machine: each engine pins a core.
ENGINE_RESOURCE = "slmflow_engine"

_LOCAL_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    # Keeps every socket the local Ray processes open on 127.0.0.1.
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
}


def connect(settings: Settings, engine_slots: int = 1) -> None:
    if ray.is_initialized():
        return
    for key, value in _LOCAL_ENV.items():
        os.environ.setdefault(key, value)
    if settings.ray_address:
        ray.init(address=settings.ray_address, namespace=settings.ray_namespace,
                 log_to_driver=False)
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a private, loopback-only cluster
    temp = settings.cache_dir / "ray"
    temp.mkdir(parents=True, exist_ok=True)
    ray.init(
        namespace=settings.ray_namespace,
        resources={ENGINE_RESOURCE: engine_slots},
        include_dashboard=False,
        _temp_dir=str(temp),
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
    )
