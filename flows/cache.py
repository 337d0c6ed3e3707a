"""Reuse of verified unit results across runs, so a crashed or interrupted run, run again, resumes where it
stopped: per unit through Prefect result persistence under a content key, or per batch of items through
one checkpoint file per batch (flows.batch), which costs a file per batch instead of a file per unit."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect.cache_policies import CacheKeyFnPolicy

from flows.prompts import build_request
from flows.spec import Item, Job
from slmflow.core.records import TaskResult
from slmflow.core.settings import Settings
from workers.fleet import FleetConfig, frontier_endpoint

# Part of every cache key: bump it when execute_unit's logic or the meaning of a TaskResult changes,
# so that results stored by the older code are recomputed rather than reused.
UNIT_CACHE_VERSION = 2


@dataclass(frozen=True)
class UnitCache:
    """Reuse of verified unit results across runs: a crashed or interrupted run, run again, does
    not call a model for the units it already finished.

    Each unit's result is persisted by Prefect under a key (`unit_cache_key`) covering everything
    that decides it: the job, the task's spec, the item, the upstream outputs, the rendered prompt,
    and `version`, a digest of the run's models, verifier settings and collection contents
    (`cache_version`). The cache is files under `storage`, so it needs neither the Prefect
    server nor the previous run's process. Only verified results (Completed states) are reused:
    a needs-review or failed unit runs again, because its cause may have been transient (a
    frontier outage, an exhausted budget).
    """

    storage: Path
    version: str
    refresh: bool = False  # recompute every unit and overwrite what is stored

    def task_options(self) -> dict[str, Any]:
        return {
            "cache_policy": CacheKeyFnPolicy(cache_key_fn=unit_cache_key),
            "persist_result": True,
            "result_storage": self.storage.resolve(),
            # Readable records that do not depend on pickling this code's classes.
            "result_serializer": "json",
            "refresh_cache": self.refresh,
        }

    # -- batches: one checkpoint file per batch instead of one persisted result per unit

    def batch_key(self, job: Job, items: list[Item]) -> str:
        """What decides a batch's results: the units' own inputs (job, tasks, items) and `version`.
        Upstream outputs are decided inside the batch, so they need no place in the key."""
        payload = {
            "unit": UNIT_CACHE_VERSION,
            "config": self.version,
            "job": job.spec.name,
            "tasks": [t.model_dump(mode="json", by_alias=True) for t in job.spec.tasks],
            "items": [[i.id, i.data] for i in items],
        }
        return "batch-" + hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()

    def load_batch(self, key: str) -> dict[tuple[str, str], TaskResult]:
        """The verified results stored for the batch `key`, by (item, task); nothing on refresh.
        As with single units, a unit that was not verified runs again."""
        path = self.storage / "batches" / f"{key}.jsonl"
        if self.refresh or not path.exists():
            return {}
        stored = (TaskResult.model_validate_json(line) for line in path.read_text(encoding="utf-8").splitlines())
        return {(r.item_id, r.task_id): r for r in stored if r.status.verified}

    def save_batch(self, key: str, results: list[TaskResult]) -> None:
        folder = self.storage / "batches"
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f"{key}.partial"
        partial.write_text("".join(r.model_dump_json() + "\n" for r in results), encoding="utf-8")
        partial.replace(folder / f"{key}.jsonl")


def unit_cache_key(_task_run_context, parameters: dict[str, Any]) -> str | None:
    """The key a unit's result is stored under; None (no caching) when the run has no cache."""
    ctx = parameters["ctx"]  # flows.cascade.UnitContext
    if ctx.cache is None:
        return None
    task, item, upstream = parameters["task"], parameters["item"], parameters["upstream"]
    # The rendered prompt is implied by the spec, the item and upstream, but including it means a
    # change in how prompts are built (flows/prompts.py) invalidates results built the old way.
    # Evidence is retrieved inside the unit; the collections' contents are in `version`.
    request = build_request(task, item.data, upstream, [])
    payload = {
        "unit": UNIT_CACHE_VERSION,
        "config": ctx.cache.version,
        "job": ctx.job,
        "task": task.model_dump(mode="json", by_alias=True),
        "item": item.data,
        "upstream": upstream,
        "messages": [m.model_dump() for m in request.messages],
    }
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
    return f"unit-{digest}"


def unit_cache_dir(settings: Settings) -> Path:
    """Persisted unit results, next to the results they make up (job names cannot start with a
    dot, so this cannot collide with a job's folder)."""
    return Path(settings.results_dir) / ".cache"


def cache_version(settings: Settings, job: Job) -> str:
    """A digest of what, besides a unit's own inputs, decides its result: the small models and the
    kinds they serve, the frontier, the verifier's settings, the embedder, and the contents of the
    job's collections (the same per-file sha256 the ingest manifest records). Change any of them
    and no earlier result is reused."""
    from retrieval.ingest import read_documents

    parts = {
        "small": sorted((s.name, s.model, sorted(s.kinds)) for s in FleetConfig.load(settings).small),
        "frontier": frontier_endpoint(settings)[:2],
        "verifier": settings.verifier.model_dump(mode="json"),
        "embedding_model": settings.embedding_model,
        "collections": {name: read_documents(job.collection_path(name)).files for name in sorted(job.spec.collections)},
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
