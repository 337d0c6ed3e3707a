"""A large job split over two Prefect workers, on both databases a Prefect server runs on.

The stack is the real one (`slmflow up`: Prefect server, Ray head with token auth, the fleet as
detached actors, a worker on the `local` pool and two on the shard pool, one shard at a time each),
with the small model replaced by the null engine: what is under test is orchestration. The job's
run is a separate process (the reliability driver) that splits the job in two shards, waits for
them as subflows and merges them. Run again, every shard reads its batch checkpoints back.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import pytest

from slmflow.core.records import TaskResult
from tests.support.env import clean_env
from tests.support.openai_server import ScriptedOpenAIServer
from tests.support.ports import free_ports, port_block
from tests.support.postgres import count_rows, postgres_server
from tests.support.prefect_api import task_runs

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
ITEMS, BATCH = 1200, 150  # 2 tasks: 2400 units, 8 batches over 2 shards


@pytest.fixture(scope="module")
def frontier() -> Iterator[ScriptedOpenAIServer]:
    """Reached only by the start-up check: the null engine's drafts all pass verification."""
    with ScriptedOpenAIServer(lambda request: json.dumps({"label": "a"})) as server:
        yield server


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def stack(request, frontier) -> Iterator[dict[str, str]]:
    root = Path(tempfile.mkdtemp(prefix="slmsh-"))  # short: Ray's socket paths must stay < 107 bytes
    (prefect_port,) = free_ports(1)
    env = {
        **clean_env(),
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "SLMFLOW_SMALL_MODEL": "null",
        "SLMFLOW_CACHE_DIR": str(root / "c"),
        "SLMFLOW_STATE_DIR": str(root / "s"),
        "SLMFLOW_QDRANT_DIR": str(root / "q"),
        "SLMFLOW_RESULTS_DIR": str(root / "runs"),
        "SLMFLOW_PREFECT_PORT": str(prefect_port),
        "SLMFLOW_RAY_PORT": str(port_block(3, range(30000, 33000, 13))),
        # The local pool's worker, then the two shard workers: three consecutive ports.
        "SLMFLOW_WORKER_HEALTH_PORT": str(port_block(3, range(33000, 36000, 11))),
        "SLMFLOW_SHARD_WORKERS": "2",
        "SLMFLOW_FRONTIER_BASE_URL": frontier.base_url,
        "SLMFLOW_FRONTIER_MODEL": frontier.model,
        "SLMFLOW_PRICE_ALIASES": frontier.price_aliases,
        "SLMFLOW_TASK_CONCURRENCY": "16",
    }
    with postgres_server() if request.param == "postgres" else nullcontext() as database:
        if database:
            env["SLMFLOW_PREFECT_DATABASE_URL"] = database
        up = _slmflow(env, "up")
        try:
            assert up.returncode == 0, up.stdout + up.stderr
            env["PREFECT_API_URL"] = f"http://127.0.0.1:{prefect_port}/api"
            yield {**env, "ROOT": str(root), "DB": request.param, "DB_URL": database or ""}
        finally:
            down = _slmflow(env, "down")
            shutil.rmtree(root, ignore_errors=True)
            assert down.returncode == 0, down.stdout + down.stderr


def _slmflow(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from slmflow.cli.app import app; app()", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _job(root: Path) -> Path:
    items = root / "items.jsonl"
    items.write_text("".join(json.dumps({"id": f"i{i:05d}", "text": f"ticket {i}"}) + "\n" for i in range(ITEMS)))
    spec = root / "large.yaml"
    spec.write_text(
        json.dumps(
            {
                "name": "large",
                "inputs": {"path": "items.jsonl"},
                "execution": {"batch_items": BATCH},
                "tasks": [
                    {"id": "route", "kind": "classify", "choices": ["a", "b"], "prompt": "Ticket: {{ item.text }}"},
                    {
                        "id": "check",
                        "kind": "classify",
                        "choices": ["a", "b"],
                        "depends_on": ["route"],
                        "prompt": "{{ item.id }} went to {{ upstream.route }}. Right?",
                    },
                ],
            }
        )
    )
    return spec


def _drive(env: dict[str, str], spec: Path, out: Path) -> dict:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.support.reliability_driver",
            "job",
            str(spec),
            "--out",
            str(out),
            "--shards",
            "2",
        ],
        env={k: v for k, v in env.items() if k not in ("ROOT", "DB", "DB_URL")},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.exists(), f"driver exited {run.returncode}:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    return json.loads(out.read_text())


def _served(figures: dict) -> int:
    return sum(row.get("served", 0) for row in figures["fleet"] if row["actor"].startswith("small:"))


def _task_run_rows(env: dict[str, str]) -> int:
    if env["DB"] == "postgres":
        return count_rows(env["DB_URL"], ["task_run"])["task_run"]
    db = next(Path(env["SLMFLOW_STATE_DIR"]).glob("prefect-home/*.db"))
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT count(*) FROM task_run").fetchone()[0]


def test_two_shards_two_workers_merge_and_resume(stack) -> None:
    root = Path(stack["ROOT"])
    spec = _job(root)
    first = _drive(stack, spec, root / "first.json")
    assert first["state"] == "COMPLETED", first.get("message")
    summary = first["summary"]
    assert summary["tasks"] == 2 * ITEMS and summary["counts"]["accepted"] == 2 * ITEMS

    # One results file for the run, one line per unit; the shards' own files were merged away.
    results = Path(summary["results_path"])
    lines = [TaskResult.model_validate_json(line) for line in results.read_text().splitlines()]
    assert len(lines) == 2 * ITEMS and len({r.key for r in lines}) == 2 * ITEMS
    assert {r.run_id for r in lines} == {first["flow_run_id"]}
    assert not list(results.parent.glob("*.shard-*"))

    # The shards are subflow runs on the shard pool: each a handful of batch task runs, and the
    # database records batches, not units.
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: stack["PREFECT_API_URL"]}), get_client(sync_client=True) as client:
        parent = FlowRunFilterParentFlowRunId(any_=[first["flow_run_id"]])
        shards = client.read_flow_runs(flow_run_filter=FlowRunFilter(parent_flow_run_id=parent))
        workers = client.read_workers_for_work_pool("slmflow-shards")
        batches = sum(len(task_runs(r.id)) for r in shards)
    assert sorted(r.name for r in shards) == ["large shard 1/2", "large shard 2/2"]
    assert all(r.state and r.state.is_completed() and r.work_pool_name == "slmflow-shards" for r in shards)
    assert len(workers) == 2
    assert batches == 8  # 600 items per shard, 4 batches of 150 each
    assert _task_run_rows(stack) < 20  # 8 batch task runs for 2400 units

    # Run again: every batch of every shard is read back from its checkpoint, no draft is made.
    again = _drive(stack, spec, root / "again.json")
    assert again["state"] == "COMPLETED" and again["summary"]["counts"] == summary["counts"]
    assert _served(again) == _served(first)
