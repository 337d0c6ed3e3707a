"""Connect to Ray: an existing cluster when RAY_ADDRESS is set, else a private local one.

This is where a process first needs Ray, so it applies the local Ray environment before importing
it (Ray reads part of it at import; slmflow/core/rayenv.py). Nothing in `workers` imports Ray at
module level except the actor definitions, which the fleet imports after connecting.
"""

from __future__ import annotations

import logging

from slmflow.core.settings import Settings

# Custom resource that stands for "room for one model engine" on CPU-only nodes, where
# num_gpus cannot express it. One engine per 2-core machine: each engine pins a core.
ENGINE_RESOURCE = "slmflow_engine"


def connect(settings: Settings) -> None:
    """RAY_ADDRESS (any form Ray accepts, including ray://) > the head `slmflow up` started >
    a private cluster inside this process, which lives as long as the process does.

    The head `up` started requires its token (a file in the state dir); this process switches to
    token auth with it before connecting. Any other cluster's auth comes from the environment
    (RAY_AUTH_MODE, RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH). The private cluster runs without
    auth, on 127.0.0.1 only (slmflow/core/rayenv.py)."""
    from slmflow.core.rayenv import apply_local_ray_env, use_token_auth

    apply_local_ray_env()
    import ray

    if ray.is_initialized():
        return
    from slmflow.core.state import own_head_token, recorded_ray_address

    address = settings.ray_address or recorded_ray_address(settings)
    if address:
        token = own_head_token(settings, address)
        if token:
            use_token_auth(token)
        ray.init(address=address, namespace=settings.ray_namespace, log_to_driver=False, logging_level=logging.WARNING)
        return
    temp = settings.cache_dir / "ray"
    temp.mkdir(parents=True, exist_ok=True)
    # Metrics on the default port belong to the long-lived head `slmflow up` starts; a per-run
    # cluster exports only where asked to, since two runs at once would compete for one port.
    metrics_port = settings.metrics_port if "metrics_port" in settings.model_fields_set else None
    ray.init(
        # "local" always starts a private cluster; without it Ray would attach to any cluster
        # another user started on this host with `ray start`.
        address="local",
        namespace=settings.ray_namespace,
        resources={ENGINE_RESOURCE: settings.engine_slots},
        include_dashboard=False,
        _temp_dir=str(temp),
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
        logging_level=logging.WARNING,
        _metrics_export_port=metrics_port,
    )
