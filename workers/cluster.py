"""Connect to Ray: an existing cluster when RAY_ADDRESS is set, else a private local one."""

from __future__ import annotations

import ray

from slmflow.settings import Settings

# Custom resource that stands for "room for one model engine" on CPU-only nodes, where
# num_gpus cannot express it. One engine per 2-core machine: each engine pins a core.
ENGINE_RESOURCE = "slmflow_engine"

def connect(settings: Settings) -> None:
    """RAY_ADDRESS (any form Ray accepts, including ray://) > the head `slmflow up` started >
    a private cluster inside this process, which lives as long as the process does."""
    if ray.is_initialized():
        return
    from slmflow.stack import recorded_ray_address

    address = settings.ray_address or recorded_ray_address(settings)
    if address:
        ray.init(address=address, namespace=settings.ray_namespace, log_to_driver=False,
                 logging_level="WARNING")
        return
    temp = settings.cache_dir / "ray"
    temp.mkdir(parents=True, exist_ok=True)
    ray.init(
        namespace=settings.ray_namespace,
        resources={ENGINE_RESOURCE: settings.engine_slots},
        include_dashboard=False,
        _temp_dir=str(temp),
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
        logging_level="WARNING",
    )
