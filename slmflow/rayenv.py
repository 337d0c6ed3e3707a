"""Environment for the Ray clusters slmflow runs itself (private, single-node, loopback-only).

Ray reads some of these when `ray` is first imported, so `slmflow/__init__.py` applies them
before any role imports Ray. They are left alone when RAY_ADDRESS names a cluster someone else
runs: a multi-node cluster needs real node addresses and its own auth settings.
"""

from __future__ import annotations

import os

LOCAL_RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    # With this off, Ray treats the host as a single-node cluster and binds every socket to
    # 127.0.0.1 (measured: gcs, raylet, agents, client server).
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    # The cluster is private and loopback-only; see docs/security.md for token auth.
    "RAY_AUTH_MODE": "disabled",
}


def remote_cluster() -> bool:
    """True when RAY_ADDRESS names a cluster on another host. A loopback address is a head on
    this machine (e.g. one `slmflow up` started), which needs the local environment to be
    reachable at all: with it unset, Ray's driver advertises the host's external address."""
    address = os.environ.get("RAY_ADDRESS") or os.environ.get("SLMFLOW_RAY_ADDRESS") or ""
    host = address.removeprefix("ray://").rsplit(":", 1)[0]
    return bool(address) and host not in ("127.0.0.1", "localhost", "")


def apply_local_ray_env() -> None:
    if remote_cluster():
        return
    for key, value in LOCAL_RAY_ENV.items():
        os.environ.setdefault(key, value)
