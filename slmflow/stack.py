"""The long-lived local stack: Prefect server, Ray head, frontier stand-in, the fleet, a Prefect
worker. `up` starts what is missing, `down` stops exactly what `up` started, by PID.

Every service listens on 127.0.0.1. Its PID, URL and log are recorded under the state dir, so
`slmflow run`, `status` and `down` find them from any shell.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from slmflow import services
from slmflow.model_prep import resolve_model
from slmflow.settings import Settings
from workers.frontier import STANDIN_MODEL

REPO = Path(__file__).resolve().parent.parent
PREFECT_ENV = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
# `down` stops these in this order: clients before the servers they talk to.
SERVICES = ["prefect-worker", "ray-head", "frontier-standin", "prefect-server"]
WORK_POOL = "local"


def prefect_api_url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.prefect_port}/api"


def ensure_prefect_server(settings: Settings) -> str:
    """Use PREFECT_API_URL when it is set; otherwise start (or reuse) a local server. Returns the
    API URL and exports it, so that this process and everything it starts talk to one server.
    A Postgres database is used when PREFECT_API_DATABASE_CONNECTION_URL is set."""
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    url = prefect_api_url(settings)
    home = settings.state_dir / "prefect-home"  # its SQLite DB lives with the other state
    home.mkdir(parents=True, exist_ok=True)
    services.start(
        settings.state_dir, "prefect-server",
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
         "--port", str(settings.prefect_port)],
        url=url.removesuffix("/api"), health_url=f"{url}/health",
        # The UI is told where the API is; by default it assumes port 4200.
        env={**PREFECT_ENV, "PREFECT_HOME": str(home), "PREFECT_UI_API_URL": url}, timeout_s=90,
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


def ensure_ray_head(settings: Settings) -> str:
    """A Ray head of our own (own temp dir and ports, loopback only) unless RAY_ADDRESS names an
    existing cluster. Returns the address to connect to."""
    if settings.ray_address:
        return settings.ray_address
    from slmflow.rayenv import LOCAL_RAY_ENV
    from workers.cluster import ENGINE_RESOURCE

    temp = settings.cache_dir / "ray"
    temp.mkdir(parents=True, exist_ok=True)
    port = settings.ray_port
    service = services.start(
        settings.state_dir, "ray-head",
        [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
         "--node-ip-address=127.0.0.1", f"--port={port}", f"--ray-client-server-port={port + 1}",
         f"--dashboard-agent-listen-port={port + 2}", f"--temp-dir={temp}",
         "--include-dashboard=false", "--disable-usage-stats",
         f'--resources={{"{ENGINE_RESOURCE}": {settings.engine_slots}}}'],
        url=f"127.0.0.1:{port}", health_url=f"tcp://127.0.0.1:{port}", env=LOCAL_RAY_ENV, timeout_s=90,
    )
    return service.url


def recorded_ray_address(settings: Settings) -> str | None:
    """The address of the Ray head `slmflow up` started, if it is still up."""
    head = services.read(settings.state_dir, "ray-head")
    return head.url if head and head.healthy else None


def start_fleet(settings: Settings) -> None:
    """Create the fleet as detached named actors on the running cluster and wait until every
    model is loaded; they then serve every run until `down`."""
    from workers.cluster import connect
    from workers.fleet import Fleet

    connect(settings)
    Fleet.connect(settings, persistent=True).wait_ready()


def ensure_work_pool(settings: Settings) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name=WORK_POOL, type="process"))
        except ObjectAlreadyExists:
            pass


def ensure_prefect_worker(settings: Settings) -> services.Service:
    """A process worker for the `local` pool. Its flow runs find the fleet the way `slmflow run`
    does: RAY_ADDRESS when set (inherited), else the head recorded in the state dir."""
    port = settings.worker_health_port
    return services.start(
        settings.state_dir, "prefect-worker",
        [sys.executable, "-m", "prefect", "worker", "start", "--pool", WORK_POOL,
         "--type", "process", "--with-healthcheck"],
        url=f"pool {WORK_POOL}", health_url=f"http://127.0.0.1:{port}/health",
        # Poll every 2 s (default 10) so a run clicked in the UI starts promptly.
        env={**PREFECT_ENV, "PREFECT_WORKER_QUERY_SECONDS": "2",
             "PREFECT_WORKER_WEBSERVER_HOST": "127.0.0.1",
             "PREFECT_WORKER_WEBSERVER_PORT": str(port)},
        cwd=REPO, timeout_s=90,
    )


def up(settings: Settings, log=print) -> None:
    api = ensure_prefect_server(settings)
    log(f"prefect server   {api.removesuffix('/api')}")
    address = ensure_ray_head(settings)
    log(f"ray              {address}")
    standin = ensure_frontier_standin(settings)
    if standin:
        log(f"frontier         local stand-in for a frontier model at {standin.url}")
    start_fleet(settings)
    log("fleet            ready (detached actors, models loaded)")
    ensure_work_pool(settings)
    ensure_prefect_worker(settings)
    log(f"prefect worker   pool '{WORK_POOL}'")


def down(settings: Settings, log=print) -> None:
    for name in SERVICES:
        if services.stop(settings.state_dir, name):
            log(f"stopped {name}")
