"""Environment for the Ray clusters slmflow runs itself (single-node, loopback-only).

Ray reads some of these when `ray` is first imported, so the entry points apply them before
anything imports Ray: the CLI (`slmflow.cli.app`), `workers.cluster.connect` (where a flow run or
script first needs Ray), benchmarks and the tests. They are left alone when RAY_ADDRESS names a cluster someone else
runs: a multi-node cluster needs real node addresses and its own auth settings (RAY_AUTH_MODE,
RAY_AUTH_TOKEN; see infra/ and docs/security.md).

Two local clusters, two auth settings:

- The head `slmflow up` starts runs with Ray token auth: `token_auth_env` is handed to the head
  (and so to every worker process its raylet starts, i.e. the fleet's actors), and
  `use_token_auth` switches a driver process (`workers.cluster.connect`) over before it connects.
  The token is a file under the state dir (mode 0600), never a value in an argument or a log.
- The private cluster that `slmflow run`/`demo` and the tests start inside their own process when
  no head is running keeps RAY_AUTH_MODE=disabled: with auth on, `ray.init()` would create and
  keep a token in ~/.ray/auth_token, shared with every other Ray cluster of the user. It lives
  only as long as that process, and binds only 127.0.0.1 (see docs/security.md).
"""

from __future__ import annotations

import os
from pathlib import Path

LOCAL_RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    # With this off, Ray treats the host as a single-node cluster and binds every socket to
    # 127.0.0.1 (measured: gcs, raylet, agents, client server).
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    # The private in-process cluster only; the head `slmflow up` starts overrides it with
    # token_auth_env().
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


def token_auth_env(token_path: Path) -> dict[str, str]:
    """Ray token auth with the token read from `token_path` (Ray's RAY_AUTH_TOKEN_PATH).
    RAY_AUTH_TOKEN would take precedence over the file, so it is blanked (Ray ignores an empty
    one) rather than inherited from whatever environment started us."""
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_path), "RAY_AUTH_TOKEN": ""}


def use_token_auth(token_path: Path) -> None:
    """Make this process a token-auth Ray client of the cluster whose token is at `token_path`.
    Call before `ray.init`: Ray caches its auth mode and token at import, so both caches are
    refreshed here (what Ray's own `ray.init()` does when it turns token auth on)."""
    os.environ.update(token_auth_env(token_path))
    del os.environ["RAY_AUTH_TOKEN"]
    try:
        from ray._raylet import AuthenticationTokenLoader, Config  # type: ignore[attr-defined]  # Cython
    except ImportError:  # ray not importable: nothing cached yet, the environment is enough
        return
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def token_auth_enabled() -> bool:
    """True when this process is configured as a Ray token-auth client/node."""
    return os.environ.get("RAY_AUTH_MODE", "").lower() == "token"
