"""The local services a run needs besides Ray: a Prefect server and the frontier stand-in."""

from __future__ import annotations

import os
import sys

from slmflow import services
from slmflow.model_prep import resolve_model
from slmflow.settings import Settings
from workers.frontier import STANDIN_MODEL

PREFECT_ENV = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}


def prefect_api_url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.prefect_port}/api"


def ensure_prefect_server(settings: Settings) -> str:
    """Use PREFECT_API_URL when it is set; otherwise start (or reuse) a local server. Returns the
    API URL and exports it, so that this process and everything it starts talk to one server."""
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    url = prefect_api_url(settings)
    home = settings.cache_dir / "prefect"
    home.mkdir(parents=True, exist_ok=True)
    services.start(
        settings.state_dir, "prefect-server",
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
         "--port", str(settings.prefect_port)],
        url=url.removesuffix("/api"), health_url=f"{url}/health",
        env={**PREFECT_ENV, "PREFECT_HOME": str(home)}, timeout_s=90,
    )
    os.environ["PREFECT_API_URL"] = url
    return url


def ensure_frontier_standin(settings: Settings) -> services.Service | None:
    """Start the local stand-in for a frontier model (a real vLLM OpenAI-compatible server on
    127.0.0.1) unless a real frontier endpoint is configured."""
    if not settings.uses_standin:
        return None
    _, path = resolve_model(settings)
    last_core = str((os.cpu_count() or 1) - 1)
    return services.start(
        settings.state_dir, "frontier-standin",
        [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", path,
         "--served-model-name", STANDIN_MODEL, "--host", "127.0.0.1",
         "--port", str(settings.standin_port), "--enforce-eager",
         "--max-model-len", str(settings.vllm.max_model_len)],
        url=f"http://127.0.0.1:{settings.standin_port}/v1",
        health_url=f"http://127.0.0.1:{settings.standin_port}/health",
        # Its own core, so it does not fight the small model's engine for core 0.
        env={"VLLM_CPU_KVCACHE_SPACE": str(settings.vllm.kv_cache_gib),
             "VLLM_CPU_OMP_THREADS_BIND": last_core, "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"},
        timeout_s=300,
    )
