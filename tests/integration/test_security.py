"""Security of the running stack (docs/security.md).

- Ray: the head `slmflow up` starts (stack.ensure_ray_head) refuses clients without its token and
  accepts `workers.cluster.connect`, whose remote work runs on workers that hold the token too.
- Prefect: with SLMFLOW_PREFECT_AUTH, the server `up` starts refuses unauthenticated writes, and
  `up`'s own client and its worker authenticate.
- Secrets (frontier key, Prefect auth, Qdrant key, Ray token) are passed where they are needed and
  never appear in `slmflow status`/`collections` output, errors, results, artifacts or logs.

The Ray and Prefect tests start real servers on their own free ports and state dirs (slow); each
stops what it started by PID. Refused Ray clients give up after ~3 s
(RAY_gcs_server_port_wait_time_s), and every subprocess has a hard timeout.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from slmflow.core.errors import FrontierError
from slmflow.core.records import GenerationRequest, Message
from tests.support.env import clean_env
from tests.support.openai_server import ScriptedOpenAIServer
from tests.support.ports import free_ports, port_block
from workers.frontier import FrontierClient

REPO = Path(__file__).resolve().parents[2]
FRONTIER_KEY = "sk-frontier-DO-NOT-LEAK-7c1e94b2"
QDRANT_KEY = "qdrant-key-DO-NOT-LEAK-51c2aa0e"
PREFECT_AUTH = "admin:prefect-DO-NOT-LEAK-77d0f3"
SECRETS = (FRONTIER_KEY, QDRANT_KEY, PREFECT_AUTH, PREFECT_AUTH.split(":", 1)[1])


def _python(code: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter in its own process group; on timeout kill the group and
    report it as exit code -9 (a client that never got in)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        env=env,
        cwd=REPO,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return subprocess.CompletedProcess(proc.args, -9, out, err)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _files_text(*roots: Path) -> str:
    """Everything readable as text under `roots` (logs, state, results)."""
    chunks = []
    for root in roots:
        for path in [root] if root.is_file() else root.rglob("*"):
            if path.is_file() and not path.is_symlink() and path.stat().st_size < 50_000_000:
                chunks.append(path.read_bytes().decode("utf-8", errors="replace"))
    return "\n".join(chunks)


def _assert_no_secret(text: str, *secrets: str) -> None:
    compact = "".join(text.split())  # also a secret that rich folded across lines
    for secret in secrets or SECRETS:
        assert secret not in text and secret not in compact, (
            f"a secret leaked: ...{text[max(0, text.find(secret) - 200) :][:400]}"
        )


# --- Ray token auth --------------------------------------------------------------------------

RAY_CLIENT = """
import sys
from slmflow.core.rayenv import apply_local_ray_env
apply_local_ray_env()  # the local Ray environment, as every slmflow process has it
import ray
try:
    ray.init(address=sys.argv[1] if len(sys.argv) > 1 else {address!r}, log_to_driver=False,
             logging_level="ERROR")
except Exception as exc:
    print("REFUSED", type(exc).__name__)
    sys.exit(3)
print("CONNECTED", ray.get(ray.remote(lambda: 41 + 1).remote(), timeout=90))
"""

RAY_DRIVER = """
from slmflow.core.rayenv import apply_local_ray_env
apply_local_ray_env()
import ray
from slmflow.core.settings import Settings
from workers.cluster import connect
connect(Settings())
# A task runs in a worker process the head's raylet starts, as the fleet's actors do.
print("CONNECTED", ray.get(ray.remote(lambda: 41 + 1).remote(), timeout=90))
"""


@pytest.fixture
def short_tmp():
    """A short temp dir: Ray's socket paths under its temp dir must stay under 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="slmsec-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.own_cluster
def test_ray_head_refuses_clients_without_its_token(short_tmp):
    from slmflow.cli import services, stack
    from slmflow.core.settings import Settings

    port = port_block(3)
    settings = Settings(
        state_dir=short_tmp / "state", cache_dir=short_tmp / "cache", ray_port=port, prefect_port=free_ports(1)[0]
    )
    env = clean_env(
        SLMFLOW_STATE_DIR=str(settings.state_dir),
        SLMFLOW_CACHE_DIR=str(settings.cache_dir),
        SLMFLOW_RAY_PORT=str(port),
        SLMFLOW_PREFECT_PORT=str(settings.prefect_port),
    )
    address = stack.ensure_ray_head(settings)
    try:
        token_file = stack.ray_token_path(settings)
        assert token_file.stat().st_mode & 0o777 == 0o600
        token = token_file.read_text()
        assert len(token) == 64 and int(token, 16)  # 256 random bits, hex
        assert stack.head_token_auth(settings) is True

        # No token: the GCS answers Unauthenticated and ray.init gives up (~3 s).
        give_up = {"RAY_gcs_server_port_wait_time_s": "3"}
        anonymous = _python(RAY_CLIENT.format(address=address), {**env, **give_up}, timeout=60)
        assert "CONNECTED" not in anonymous.stdout and anonymous.returncode != 0, anonymous
        assert "Unauthenticated" in anonymous.stderr or anonymous.returncode == -9, anonymous.stderr
        # A wrong token is refused the same way.
        wrong = _python(
            RAY_CLIENT.format(address=address),
            {**env, **give_up, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "0" * 64},
            timeout=60,
        )
        assert "CONNECTED" not in wrong.stdout and wrong.returncode != 0, wrong

        # workers.cluster.connect finds the recorded head and its token; remote work runs.
        driver = _python(RAY_DRIVER, env, timeout=180)
        assert driver.returncode == 0 and "CONNECTED 42" in driver.stdout, driver.stderr[-3000:]

        # `slmflow status` connects the same way and reports the protection.
        status = subprocess.run(
            [str(Path(sys.executable).parent / "slmflow"), "status", "--json"],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert status.returncode == 0, status.stderr[-3000:]
        report = json.loads(status.stdout)
        assert report["protections"]["ray_token_auth"]["on"] is True
        assert report["protections"]["loopback_only"]["on"] is True
        _assert_no_secret(status.stdout + status.stderr, token)

        # The token is in no log: the head's, Ray's own session logs, the drivers'.
        _assert_no_secret(_files_text(settings.state_dir / "ray-head.log", settings.cache_dir / "ray"), token)
        _assert_no_secret(anonymous.stderr + wrong.stderr + driver.stdout + driver.stderr, token)
    finally:
        stack.down(settings, log=lambda *_: None)
    assert services.read(settings.state_dir, "ray-head") is None
    assert not token_file.exists()  # the next `up` gets a new token


# --- Prefect API basic auth ------------------------------------------------------------------

PREFECT_UP = """
from slmflow.cli import stack
from slmflow.core.settings import get_settings
settings = get_settings()
api = stack.ensure_prefect_server(settings)   # the server, with the auth string
stack.ensure_work_pool(settings.work_pool)    # this process as an authenticated client
stack.ensure_prefect_worker(settings)         # the worker, polling with the auth string
print("API", api)
"""


def _basic(auth: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}


@pytest.mark.slow
def test_prefect_api_refuses_requests_without_the_auth_string(short_tmp):
    import httpx

    from slmflow.cli import services, stack

    prefect_port, health_port = free_ports(2)
    state = short_tmp / "state"
    env = clean_env(
        SLMFLOW_STATE_DIR=str(state),
        SLMFLOW_PREFECT_PORT=str(prefect_port),
        SLMFLOW_WORKER_HEALTH_PORT=str(health_port),
        SLMFLOW_PREFECT_AUTH=PREFECT_AUTH,
        PREFECT_HOME=str(short_tmp / "client-home"),
    )
    api = f"http://127.0.0.1:{prefect_port}/api"
    try:
        up = _python(PREFECT_UP, env, timeout=300)
        assert up.returncode == 0, up.stdout + up.stderr[-3000:]
        _assert_no_secret(up.stdout + up.stderr)

        assert httpx.get(f"{api}/health").status_code == 200  # probes stay open
        flow = {"name": "security-probe"}
        assert httpx.post(f"{api}/flows/", json=flow).status_code == 401
        assert httpx.post(f"{api}/flows/", json=flow, headers=_basic("admin:wrong")).status_code == 401
        created = httpx.post(f"{api}/flows/", json=flow, headers=_basic(PREFECT_AUTH))
        assert created.status_code in (200, 201), created.text
        flow_run = {"flow_id": created.json()["id"], "name": "probe"}
        assert httpx.post(f"{api}/flow_runs/", json=flow_run).status_code == 401
        run = httpx.post(f"{api}/flow_runs/", json=flow_run, headers=_basic(PREFECT_AUTH))
        assert run.status_code == 201, run.text
        assert httpx.get(f"{api}/work_pools/local").status_code == 401

        # `up`'s client created the pool, and the worker polls it with the auth string.
        pool = httpx.get(f"{api}/work_pools/local", headers=_basic(PREFECT_AUTH))
        assert pool.status_code == 200, pool.text
        worker = services.read(state, "prefect-worker")
        assert worker and worker.healthy
        workers = httpx.post(f"{api}/work_pools/local/workers/filter", json={}, headers=_basic(PREFECT_AUTH)).json()
        assert workers, "the worker never reached the API"
        assert stack.prefect_auth_enforced(api) is True
        _assert_no_secret(_files_text(state / "prefect-server.log", state / "prefect-worker.log"))
    finally:
        for name in ("prefect-worker", "prefect-server"):
            services.stop(state, name)
    assert not [n for n in ("prefect-worker", "prefect-server") if services.read(state, n)]


# --- Qdrant key and `slmflow status` ---------------------------------------------------------


@contextmanager
def fake_qdrant(status: int = 200):
    """Answers GET /collections like a Qdrant server (or with `status`), recording headers."""
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            seen.append({k.lower(): v for k, v in self.headers.items()})
            body = (
                json.dumps({"result": {"collections": []}, "status": "ok", "time": 0.0})
                if status == 200
                else json.dumps({"status": {"error": "Invalid api key"}})
            )
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def secret_env(tmp_path, monkeypatch):
    """Every secret set through the environment, state in tmp_path, nothing running."""
    from slmflow.core.settings import get_settings

    for key, value in {
        "SLMFLOW_STATE_DIR": str(tmp_path / "state"),
        "SLMFLOW_QDRANT_DIR": str(tmp_path / "qdrant"),
        "SLMFLOW_PREFECT_PORT": str(free_ports(1)[0]),
        "SLMFLOW_FRONTIER_BASE_URL": "https://frontier.example/v1",
        "SLMFLOW_FRONTIER_API_KEY": FRONTIER_KEY,
        "SLMFLOW_PREFECT_AUTH": PREFECT_AUTH,
        "QDRANT_API_KEY": QDRANT_KEY,
    }.items():
        monkeypatch.setenv(key, value)
    for key in ("PREFECT_API_URL", "RAY_ADDRESS", "SLMFLOW_RAY_ADDRESS"):
        monkeypatch.delenv(key, raising=False)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def _cli(*args: str):
    from typer.testing import CliRunner

    from slmflow.cli.app import app

    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    return result, result.output  # stdout and stderr


def test_qdrant_key_is_sent_but_never_printed(secret_env):
    from slmflow.core.settings import get_settings

    with fake_qdrant() as (url, seen):
        secret_env.setenv("QDRANT_URL", url)
        get_settings.cache_clear()
        for args in (("collections",), ("collections", "--json")):
            result, out = _cli(*args)
            assert result.exit_code == 0, out
            assert "no collections" in out or '"collections": []' in out
            _assert_no_secret(out)
    assert seen and all(h.get("api-key") == QDRANT_KEY for h in seen)  # passed through

    with fake_qdrant(status=403) as (url, seen):  # a server that rejects the key
        secret_env.setenv("QDRANT_URL", url)
        get_settings.cache_clear()
        result, out = _cli("collections")
        assert result.exit_code == 1 and "403" in out, out
        _assert_no_secret(out)

    secret_env.setenv("QDRANT_URL", f"http://127.0.0.1:{free_ports(1)[0]}")  # nothing listening
    get_settings.cache_clear()
    result, out = _cli("collections")
    assert result.exit_code == 1 and "error" in out, out
    _assert_no_secret(out)


def test_status_masks_secrets_and_reports_protections(secret_env):
    from slmflow.core.settings import get_settings

    secret_env.setenv("QDRANT_URL", "http://qdrant-user:qdrant-DO-NOT-LEAK-url@qdrant.example:6333")
    get_settings.cache_clear()
    result, out = _cli("status")
    assert result.exit_code == 0, out
    _assert_no_secret(out, *SECRETS, "qdrant-DO-NOT-LEAK-url")
    assert "protections" in out and "**********" in out

    result, out = _cli("status", "--json")
    assert result.exit_code == 0, out
    _assert_no_secret(out, *SECRETS, "qdrant-DO-NOT-LEAK-url")
    report = json.loads(result.stdout)
    p = report["protections"]
    assert set(p) == {"ray_token_auth", "prefect_auth", "loopback_only", "qdrant_api_key", "frontier_api_key"}
    assert p["ray_token_auth"]["on"] is False  # nothing running: runs use the private cluster
    assert p["prefect_auth"]["on"] is None  # no server to ask
    assert "SLMFLOW_PREFECT_AUTH" in p["prefect_auth"]["detail"]
    assert p["qdrant_api_key"]["on"] is True and p["frontier_api_key"]["on"] is True
    assert "qdrant at qdrant.example" in p["loopback_only"]["detail"]
    s = report["settings"]
    assert s["frontier_api_key"] == s["qdrant_api_key"] == s["prefect_auth"] == "**********"


# --- A job run leaves the frontier key nowhere ------------------------------------------------

CLASSIFY = GenerationRequest(
    kind="classify", choices=["yes", "no"], messages=[Message(role="user", content="Is the sky blue?")]
)


class _EchoKeyServer:
    """A provider that puts the caller's Authorization header into its 401 error body."""

    def __enter__(self):
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                body = json.dumps(
                    {"error": {"message": "Incorrect API key provided: " + str(self.headers.get("Authorization"))}}
                ).encode()
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_frontier_error_never_contains_the_key_even_when_the_provider_echoes_it():
    with _EchoKeyServer() as url:
        client = FrontierClient(url, "m", FRONTIER_KEY, backoff_s=0.01)
        messages = []
        for call in (lambda: client.generate(CLASSIFY), client.check):
            with pytest.raises(FrontierError) as exc:
                asyncio.run(call())
            messages.append(str(exc.value))
        asyncio.run(client.shutdown())
    assert all("401" in m for m in messages)
    _assert_no_secret("\n".join(messages), FRONTIER_KEY)


JOB_SPEC = """
name: key-scan
inputs:
  items:
    - {id: one, text: "Is the sky blue?"}
    - {id: two, text: "Is grass blue?"}
    - {id: three, text: "Is snow white?"}
tasks:
  - id: answer
    kind: classify
    choices: ["yes", "no"]
    prompt: "{{ item.text }}"
"""


class _KeyScanFleet:
    """The Fleet seam of flows.job: no Ray, but the frontier is a real FrontierClient holding the
    key and calling a real HTTP server, as the frontier actor does."""

    def __init__(self, settings):
        from workers.fleet import frontier_endpoint, frontier_key

        base_url, model, _ = frontier_endpoint(settings)
        self.client_args = (base_url, model, frontier_key(settings))

    def _client(self) -> FrontierClient:
        return FrontierClient(*self.client_args, backoff_s=0.01, attempts=2)

    def check_frontier(self) -> None:
        client = self._client()
        try:
            asyncio.run(client.check())
        finally:
            asyncio.run(client.shutdown())


class _KeyScanWorkers:
    """Small model answers outside the choices, so every item escalates to the frontier."""

    def __init__(self, fleet: _KeyScanFleet):
        self.fleet = fleet

    def search(self, collection, query, k):
        return []

    def small(self, request):
        from tests.support.fakes import draft

        return draft("small", "maybe")

    def frontier(self, request):
        client = self.fleet._client()
        try:
            return asyncio.run(client.generate(request))
        finally:
            asyncio.run(client.shutdown())

    def verify(self, request):
        from verification.verifier import Verifier

        return Verifier().verify(request)


def test_a_job_run_leaves_the_frontier_key_nowhere(prefect_api, tmp_path, monkeypatch, capfd):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterId,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.logging.handlers import APILogHandler

    import flows.job as job_module
    import flows.run as run_module
    from slmflow.core.settings import Price, Settings

    spec = tmp_path / "job.yaml"
    spec.write_text(JOB_SPEC)
    with ScriptedOpenAIServer(lambda request: json.dumps({"label": "yes"})) as server:
        # One frontier call is refused (401, not retried): its item ends needs-review with the
        # error as the reason, the path on which a key would most likely leak.
        server.faults.append(("status", 401))
        settings = Settings(
            frontier_base_url=server.base_url,
            frontier_model=server.model,
            frontier_api_key=FRONTIER_KEY,
            results_dir=tmp_path / "runs",
            prices={"small": Price(input_per_m=1, output_per_m=2)},
            price_aliases={server.model: "gpt-4o"},  # a model LiteLLM's price map does not list
        )
        monkeypatch.setattr(job_module, "get_settings", lambda: settings)
        monkeypatch.setattr(run_module, "get_fleet", lambda s: _KeyScanFleet(s))
        monkeypatch.setattr(run_module, "RayWorkers", _KeyScanWorkers)
        state = job_module.run_job(str(spec), return_state=True)
    assert state.is_completed(), state.message
    # The key went where it belongs: every request's Authorization header.
    assert server.headers and all(h["authorization"] == f"Bearer {FRONTIER_KEY}" for h in server.headers)

    results = [json.loads(line) for p in (tmp_path / "runs").rglob("*.jsonl") for line in p.read_text().splitlines()]
    statuses = sorted(r["status"] for r in results if "status" in r)
    assert statuses == ["escalated", "escalated", "needs_review"], statuses

    run_id = state.state_details.flow_run_id

    async def read_back():
        await APILogHandler.aflush()  # the run's logs are shipped in batches
        async with get_client() as client:
            flow_run = await client.read_flow_run(run_id)
            tasks = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
            artifacts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
            )
            logs = await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
        return flow_run, tasks, artifacts, logs

    flow_run, tasks, artifacts, logs = asyncio.run(read_back())
    assert {a.key for a in artifacts} >= {"key-scan-results", "key-scan-summary", "key-scan-ledger"}
    assert logs and len(tasks) == 3
    assert any(t.state and t.state.name == "NeedsReview" and "401" in (t.state.message or "") for t in tasks)
    captured = capfd.readouterr()
    _assert_no_secret(
        "\n".join(
            [
                _files_text(tmp_path / "runs"),
                flow_run.model_dump_json(),
                *(t.model_dump_json() for t in tasks),
                *(a.model_dump_json() for a in artifacts),
                *(entry.model_dump_json() for entry in logs),
                captured.out,
                captured.err,
            ]
        ),
        FRONTIER_KEY,
    )
