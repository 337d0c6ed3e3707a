"""The long-lived local stack: Prefect server, Ray head, frontier stand-in, the fleet, a Prefect
worker. `up` starts what is missing, `down` stops exactly what `up` started, by PID.

Every service listens on 127.0.0.1. Its PID, URL and log are recorded under the state dir, so
`slmflow run`, `status` and `down` find them from any shell.

Protections (docs/security.md): the Ray head runs with Ray token auth, its token a 0600 file in
the state dir that `down` removes; with `SLMFLOW_PREFECT_AUTH` set, the Prefect server refuses
requests without that basic-auth string, and the worker and this process send it.
"""

from __future__ import annotations

import os
import secrets
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from slmflow.cli import services
from slmflow.core.models import resolve_model
from slmflow.core.settings import Settings
from slmflow.core.state import own_head_token, ray_token_path
from workers.frontier import STANDIN_MODEL

REPO = Path(__file__).resolve().parents[2]
PREFECT_ENV = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
# `down` stops these in this order: clients before the servers they talk to.
SERVICES = ["prefect-worker", "ray-head", "frontier-standin", "prefect-server"]


def prefect_api_url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.prefect_port}/api"


def metrics_url(settings: Settings) -> str:
    """Ray's Prometheus endpoint on the head `up` starts (workers/metrics.py says what is there)."""
    return f"http://127.0.0.1:{settings.metrics_port}/metrics"


def prefect_client_env(settings: Settings) -> dict[str, str]:
    """What a Prefect client needs to pass the server's basic auth (nothing when it is off)."""
    if settings.prefect_auth is None:
        return {}
    return {"PREFECT_API_AUTH_STRING": settings.prefect_auth.get_secret_value()}


def use_prefect_auth(settings: Settings) -> None:
    """Make this process's Prefect client send SLMFLOW_PREFECT_AUTH. Prefect reads its settings
    when it is imported, so this runs before anything here imports Prefect."""
    os.environ.update(prefect_client_env(settings))


def use_prefect_api(settings: Settings) -> str:
    """Point this process's Prefect client at PREFECT_API_URL, else the local server, with
    SLMFLOW_PREFECT_AUTH. Prefect reads its settings when it is imported: call this first."""
    if not os.environ.get("PREFECT_API_URL"):
        os.environ["PREFECT_API_URL"] = prefect_api_url(settings)
    use_prefect_auth(settings)
    return os.environ["PREFECT_API_URL"]


def prefect_auth_enforced(api_url: str, timeout: float = 3.0) -> bool | None:
    """Whether the Prefect API at `api_url` refuses a request without credentials: True (401),
    False (answered), None (unreachable). /health is exempt from auth, so this asks /admin/version."""
    try:
        with urllib.request.urlopen(f"{api_url.rstrip('/')}/admin/version", timeout=timeout):
            return False
    except urllib.error.HTTPError as exc:
        return True if exc.code == 401 else None
    except (urllib.error.URLError, OSError, ValueError):
        return None


def ensure_prefect_server(settings: Settings) -> str:
    """Use PREFECT_API_URL when it is set; otherwise start (or reuse) a local server. Returns the
    API URL and exports it, so that this process and everything it starts talk to one server.
    Its database is SQLite in the state dir, or PostgreSQL when SLMFLOW_PREFECT_DATABASE_URL names
    one (`postgresql+asyncpg://user:password@host:5432/prefect`), as production servers run.

    With SLMFLOW_PREFECT_AUTH set, the server it starts requires that basic-auth string
    (PREFECT_SERVER_API_AUTH_STRING) and this process sends it (PREFECT_API_AUTH_STRING)."""
    use_prefect_auth(settings)
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    url = prefect_api_url(settings)
    home = settings.state_dir / "prefect-home"  # its SQLite DB lives with the other state
    home.mkdir(parents=True, exist_ok=True)
    auth = {"PREFECT_SERVER_API_AUTH_STRING": settings.prefect_auth.get_secret_value()} if settings.prefect_auth else {}
    database = settings.prefect_database_url
    db = {"PREFECT_API_DATABASE_CONNECTION_URL": database.get_secret_value()} if database else {}
    services.start(
        settings.state_dir,
        "prefect-server",
        [
            sys.executable,
            "-m",
            "prefect",
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(settings.prefect_port),
        ],
        url=url.removesuffix("/api"),
        health_url=f"{url}/health",
        # The UI is told where the API is (by default it assumes port 4200), and the server where
        # the UI is, for the links automations send (`{{ flow_run|ui_url }}`).
        env={
            **PREFECT_ENV,
            "PREFECT_HOME": str(home),
            "PREFECT_UI_API_URL": url,
            "PREFECT_UI_URL": url.removesuffix("/api"),
            **auth,
            **db,
        },
        timeout_s=90,
    )
    if settings.prefect_auth and prefect_auth_enforced(url) is False:
        raise services.ServiceError(
            f"the Prefect server at {url} (started earlier) accepts requests without "
            "SLMFLOW_PREFECT_AUTH; stop it with `slmflow down` and start it again"
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
        settings.state_dir,
        "frontier-standin",
        [
            sys.executable,
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            path,
            "--served-model-name",
            STANDIN_MODEL,
            "--host",
            "127.0.0.1",
            "--port",
            str(settings.standin_port),
            "--enforce-eager",
            "--max-model-len",
            str(settings.vllm.max_model_len),
            # The OpenAI tools API, as a frontier offers it. Tool steps ask for tool_choice
            # "required", which vLLM answers by structured output; it still wants a parser named.
            "--enable-auto-tool-choice",
            "--tool-call-parser",
            "pythonic",
        ],
        url=f"http://127.0.0.1:{settings.standin_port}/v1",
        health_url=f"http://127.0.0.1:{settings.standin_port}/health",
        # Its own core, so it does not fight the small model's engine for core 0.
        env={
            "VLLM_CPU_KVCACHE_SPACE": str(settings.vllm.kv_cache_gib),
            "VLLM_CPU_OMP_THREADS_BIND": last_core,
            "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
        },
        timeout_s=300,
    )


@contextmanager
def one_off(settings: Settings, log: Callable[[str], None], keep_fleet: bool = False) -> Iterator[str]:
    """What running flows in this process needs: a Prefect server (left running) and the frontier
    stand-in when no frontier is configured. On exit, the actors this process created and a
    stand-in it started are stopped. Yields the Prefect API URL."""
    running = services.read(settings.state_dir, "frontier-standin")
    standin_was_up = bool(running and running.healthy)  # e.g. started by `slmflow up`: not ours
    api = ensure_prefect_server(settings)
    log(f"Prefect API: {api}")
    standin = ensure_frontier_standin(settings)
    if standin:
        log(f"Frontier: [yellow]local stand-in for a frontier model[/] at {standin.url}")
    try:
        yield api
    finally:
        if not keep_fleet:
            from workers.fleet import close_fleet

            close_fleet()
            if standin and not standin_was_up:
                services.stop(settings.state_dir, "frontier-standin")


def ensure_ray_token(settings: Settings) -> Path:
    """The Ray auth token of the head `up` starts: 256 random bits in hex, as Ray's own
    `ray get-auth-token --generate` makes, but kept in the state dir with mode 0600 rather than
    in ~/.ray/auth_token, which every Ray cluster of the user would share. Reused while it
    exists (a running head keeps its token); `down` deletes it, so each `up` gets a new one."""
    path = ray_token_path(settings)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        os.chmod(path, 0o600)
        if path.read_text().strip():
            return path
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))
    return path


def _process_env(pid: int) -> dict[str, str] | None:
    """Another process's environment (Linux, same user), or None when it cannot be read."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def head_token_auth(settings: Settings) -> bool | None:
    """Whether the recorded Ray head runs with token auth (from its environment); None when no
    head is recorded or its environment cannot be read."""
    head = services.read(settings.state_dir, "ray-head")
    env = _process_env(head.pid) if head and head.alive else None
    return None if env is None else env.get("RAY_AUTH_MODE", "").lower() == "token"


def ensure_ray_head(settings: Settings) -> str:
    """A Ray head of our own (own temp dir and ports, loopback only, Ray token auth) unless
    RAY_ADDRESS names an existing cluster. Returns the address to connect to."""
    if settings.ray_address:
        return settings.ray_address
    from slmflow.core.rayenv import LOCAL_RAY_ENV, token_auth_env
    from workers.cluster import ENGINE_RESOURCE

    temp = settings.cache_dir / "ray"
    temp.mkdir(parents=True, exist_ok=True)
    port = settings.ray_port
    # The raylet passes its environment on to every worker process, so the fleet's actors
    # authenticate with the same token file.
    env = {**LOCAL_RAY_ENV, **token_auth_env(ensure_ray_token(settings))}
    service = services.start(
        settings.state_dir,
        "ray-head",
        [
            sys.executable,
            "-m",
            "ray.scripts.scripts",
            "start",
            "--head",
            "--block",
            "--node-ip-address=127.0.0.1",
            f"--port={port}",
            f"--ray-client-server-port={port + 1}",
            f"--dashboard-agent-listen-port={port + 2}",
            f"--temp-dir={temp}",
            "--include-dashboard=false",
            "--disable-usage-stats",
            f'--resources={{"{ENGINE_RESOURCE}": {settings.engine_slots}}}',
            # Ray's Prometheus endpoint: Ray's, vLLM's and slmflow's metrics (workers/metrics.py).
            f"--metrics-export-port={settings.metrics_port}",
        ],
        url=f"127.0.0.1:{port}",
        health_url=f"tcp://127.0.0.1:{port}",
        env=env,
        timeout_s=90,
    )
    if head_token_auth(settings) is False:
        raise services.ServiceError(
            f"the Ray head at {service.url} (started earlier) runs without token auth; stop it "
            "with `slmflow down` and start it again"
        )
    return service.url


def start_fleet(settings: Settings) -> None:
    """Create the fleet as detached named actors on the running cluster and wait until every
    model is loaded; they then serve every run until `down`."""
    from workers.cluster import connect
    from workers.fleet import Fleet

    connect(settings)
    Fleet.connect(settings, persistent=True).wait_ready()


def ensure_work_pool(name: str) -> None:
    from flows.workpool import ensure_work_pool as ensure

    ensure(name)


def ensure_prefect_worker(settings: Settings) -> services.Service:
    """A process worker for the `local` pool. Its flow runs find the fleet the way `slmflow run`
    does: RAY_ADDRESS when set (inherited), else the head recorded in the state dir, with its
    token (workers.cluster.connect). It sends SLMFLOW_PREFECT_AUTH to the API when set."""
    return _worker(settings, "prefect-worker", settings.work_pool, settings.worker_health_port)


def ensure_shard_workers(settings: Settings) -> list[services.Service]:
    """`shard_workers` workers on the shard pool, each running one shard at a time (flows.shard), so
    a job split in K shards runs K at once on K workers."""
    if not settings.shard_workers:
        return []
    ensure_work_pool(settings.shard_pool)
    return [
        _worker(settings, f"shard-worker-{k}", settings.shard_pool, settings.worker_health_port + 1 + k, limit=1)
        for k in range(settings.shard_workers)
    ]


def _worker(settings: Settings, name: str, pool: str, health_port: int, limit: int | None = None) -> services.Service:
    return services.start(
        settings.state_dir,
        name,
        [
            sys.executable,
            "-m",
            "prefect",
            "worker",
            "start",
            "--pool",
            pool,
            "--type",
            "process",
            "--name",
            f"{name}-{health_port}",
            "--with-healthcheck",
            *(["--limit", str(limit)] if limit else []),
        ],
        url=f"pool {pool}",
        health_url=f"http://127.0.0.1:{health_port}/health",
        # Poll every 2 s (default 10) so a run clicked in the UI starts promptly.
        env={
            **PREFECT_ENV,
            "PREFECT_WORKER_QUERY_SECONDS": "2",
            "PREFECT_WORKER_WEBSERVER_HOST": "127.0.0.1",
            "PREFECT_WORKER_WEBSERVER_PORT": str(health_port),
            **prefect_client_env(settings),
        },
        cwd=REPO,
        timeout_s=90,
    )


def up(settings: Settings, log=print) -> None:
    from workers.fleet import FleetConfig

    FleetConfig.load(settings)  # a fleet file that does not validate fails before anything starts
    api = ensure_prefect_server(settings)
    auth = "basic auth" if settings.prefect_auth else "no auth: set SLMFLOW_PREFECT_AUTH to require it"
    log(f"prefect server   {api.removesuffix('/api')} ({auth})")
    address = ensure_ray_head(settings)
    token = own_head_token(settings, address)
    log(f"ray              {address}" + (f" (token auth, token in {token})" if token else ""))
    if not settings.ray_address:
        log(f"metrics          {metrics_url(settings)} (Prometheus; dashboard: infra/grafana/slmflow.json)")
    standin = ensure_frontier_standin(settings)
    if standin:
        log(f"frontier         local stand-in for a frontier model at {standin.url}")
    start_fleet(settings)
    log("fleet            ready (detached actors, models loaded)")
    from flows.deploy import deploy_all

    deployed = deploy_all()
    log(f"deployments      {', '.join(deployed)} (one per shipped job, and reviews)")
    ensure_prefect_worker(settings)
    log(f"prefect worker   pool '{settings.work_pool}'")
    if ensure_shard_workers(settings):
        log(f"shard workers    {settings.shard_workers} on pool '{settings.shard_pool}', one shard each")
    if settings.alert_webhook:
        from flows.alerts import install_alerts

        install_alerts(settings.alert_webhook, settings.alert_max_review)
        limit = settings.alert_max_review
        log(f"alerts           to {redact_url(settings.alert_webhook)} (more than {limit} reviews; budget)")


def redact_url(url: str | None) -> str | None:
    """`url` with a user:password@ part masked, for printing."""
    if not url:
        return url
    parts = urlsplit(url if "//" in url else f"//{url}")
    if "@" not in parts.netloc:
        return url
    masked = parts._replace(netloc="**********@" + parts.netloc.rsplit("@", 1)[1]).geturl()
    return masked if "//" in url else masked.removeprefix("//")


def _host(url: str | None) -> str | None:
    if not url:
        return None
    return urlsplit(url if "//" in url else f"//{url}").hostname


def _loopback(url: str | None) -> bool:
    return _host(url) in ("127.0.0.1", "localhost", "::1")


def protections(settings: Settings) -> dict[str, dict]:
    """Which protections are on for the stack this process would use, each as
    {"on": True | False | None (unknown), "detail": ...}. Never includes a secret's value."""
    from slmflow.core.rayenv import token_auth_enabled

    out: dict[str, dict] = {}
    head = services.read(settings.state_dir, "ray-head")
    address = settings.ray_address or (head.url if head else None)
    if head and address and own_head_token(settings, address):
        path = ray_token_path(settings)
        mode = oct(path.stat().st_mode & 0o777)
        on = head_token_auth(settings)
        out["ray_token_auth"] = {
            "on": on,
            "detail": f"head {head.url}: token file {path} ({mode})"
            + {True: "", False: "; the head does not enforce it", None: "; the head is not running"}[on],
        }
    elif settings.ray_address:
        on = token_auth_enabled()
        out["ray_token_auth"] = {
            "on": on if on else None,
            "detail": (
                "this client sends a token (RAY_AUTH_MODE=token)"
                if on
                else "this client sends no token; the cluster's own RAY_AUTH_MODE decides"
            )
            + f" to {settings.ray_address}",
        }
    else:
        out["ray_token_auth"] = {
            "on": False,
            "detail": "no Ray head running; a run starts a private in-process cluster without auth, on 127.0.0.1 only",
        }

    api = os.environ.get("PREFECT_API_URL") or prefect_api_url(settings)
    enforced = prefect_auth_enforced(api)
    sends = bool(settings.prefect_auth or os.environ.get("PREFECT_API_AUTH_STRING"))
    out["prefect_auth"] = {
        "on": enforced,
        "detail": (
            {
                True: "server refuses requests without credentials",
                False: "server answers requests without credentials",
                None: "server not reachable",
            }[enforced]
            + (
                "; this client sends SLMFLOW_PREFECT_AUTH"
                if settings.prefect_auth
                else "; this client sends PREFECT_API_AUTH_STRING"
                if sends
                else ""
            )
        ),
    }

    started = [svc for name in SERVICES if (svc := services.read(settings.state_dir, name))]
    local = all(_loopback(svc.health_url) for svc in started)
    external = {
        name: _host(url)
        for name, url in (
            ("prefect", api),
            ("ray", settings.ray_address),
            ("qdrant", settings.qdrant_url),
            ("frontier", settings.frontier_base_url),
        )
        if url and not _loopback(url)
    }
    detail = "services slmflow started listen on 127.0.0.1"
    if external:
        detail += "; external endpoints: " + ", ".join(f"{k} at {v}" for k, v in external.items())
    out["loopback_only"] = {"on": local, "detail": detail}

    if settings.qdrant_url:
        out["qdrant_api_key"] = {
            "on": settings.qdrant_api_key is not None,
            "detail": (
                "set (masked), sent to the Qdrant server"
                if settings.qdrant_api_key
                else "Qdrant server without an API key"
            ),
        }
    else:
        out["qdrant_api_key"] = {
            "on": settings.qdrant_api_key is not None,
            "detail": "embedded engine: no network port, no key needed",
        }

    source = (
        "SLMFLOW_FRONTIER_API_KEY (masked)"
        if settings.frontier_api_key
        else f"Prefect Secret block '{settings.frontier_api_key_block}'"
        if settings.frontier_api_key_block
        else "none (local stand-in)"
        if settings.uses_standin
        else "none"
    )
    out["frontier_api_key"] = {"on": source.startswith(("SLMFLOW", "Prefect")), "detail": source}
    return out


def down(settings: Settings, log=print) -> None:
    """Stop every service, each only once all its processes are gone (bounded; see
    `services.stop`). What outlives that is named in one `ServiceError` at the end."""
    shard_workers = sorted(p.stem for p in settings.state_dir.glob("shard-worker-*.json"))
    problems = []
    for name in [*shard_workers, *SERVICES]:
        try:
            if services.stop(settings.state_dir, name):
                log(f"stopped {name}")
        except services.ServiceError as exc:
            problems.append(str(exc))
    if services.read(settings.state_dir, "ray-head") is None:
        # The head that used it is gone: the next `up` makes a new token.
        ray_token_path(settings).unlink(missing_ok=True)
    if problems:
        raise services.ServiceError("\n".join(problems))
