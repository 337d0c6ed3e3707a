"""Ray actors: thin wrappers that build a plain object inside the actor process and expose it.

All the logic lives in the wrapped classes (engines, FrontierClient, Verifier, Retriever), which
are tested without Ray. Model actors are async so that one actor serves many concurrent requests
and vLLM batches them.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import ray

from slmflow.core.records import Draft, Evidence, GenerationRequest, Verdict, VerifyRequest
from slmflow.core.settings import EmbeddingRuntime
from workers import wire
from workers.replica import ReplicaSpec


@ray.remote
class SmallModelWorker:
    def __init__(self, spec: ReplicaSpec, api_key: str | None = None):
        from workers.metrics import EngineMetrics
        from workers.replica import build_engine
        from workers.serving import ServedEngine

        os.environ.update(spec.env)
        if spec.parallel:
            # vLLM's engine process starts the shard workers on this cluster, in this actor's
            # placement group; it finds the cluster through RAY_ADDRESS.
            os.environ["RAY_ADDRESS"] = ray.get_runtime_context().gcs_address
        self._spec = spec
        engine = build_engine(spec, api_key, _ray_stat_loggers() if not spec.base_url else None)
        metrics = EngineMetrics(spec.member, spec.replica, spec.model_name)
        self._served = ServedEngine(engine, spec.max_in_flight, spec.usd_per_hour, metrics)

    async def generate(self, request: GenerationRequest) -> Draft:
        return await self._served.generate(request)

    async def generate_many(self, requests: bytes) -> list[bytes | BaseException]:
        """Concurrent requests in one call (workers.coalesce, in workers.wire's format); the engine
        batches them as before."""
        drafts = await asyncio.gather(
            *(self._served.generate(r) for r in wire.load_requests(GenerationRequest, requests)),
            return_exceptions=True,
        )
        return wire.dump_answers(drafts)

    async def check(self) -> None:
        """An endpoint member proves it holds answers to the forms its kinds need."""
        from workers.engines import OpenAIEngine

        if isinstance(self._served.engine, OpenAIEngine):
            await self._served.engine.probe(self._spec.kinds)

    async def stats(self) -> dict:
        pg = ray.util.get_current_placement_group()
        return {
            **self._served.stats(),
            "pid": os.getpid(),
            "restarted": ray.get_runtime_context().was_current_actor_reconstructed,
            "gpus": [str(g) for g in ray.get_gpu_ids()],
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "placement_group": pg.bundle_specs if pg else None,
            "gpu_memory_utilization": self._spec.engine_args.get("gpu_memory_utilization"),
            "endpoint": self._spec.base_url,
        }

    async def shutdown(self) -> None:
        await self._served.engine.shutdown()


def _ray_stat_loggers() -> list | None:
    """vLLM's Ray stat logger, so engine metrics (running and waiting requests, KV-cache use,
    tokens) reach Ray's Prometheus endpoint; None where vLLM lacks it."""
    try:
        from vllm.v1.metrics.ray_wrappers import RayPrometheusStatLogger
    except ImportError:
        return None
    return [RayPrometheusStatLogger]


@ray.remote
class FrontierWorker:
    def __init__(
        self, base_url: str, model: str, api_key: str | None, label: str, timeout_s: float, max_wait_s: float = 60.0
    ):
        from workers.frontier import FrontierClient

        self._client = FrontierClient(base_url, model, api_key, label=label, timeout_s=timeout_s, max_wait_s=max_wait_s)

    async def generate(self, request: GenerationRequest) -> Draft:
        return await self._client.generate(request)

    async def check(self) -> None:
        await self._client.check()

    async def stats(self) -> dict:
        return {**self._client.stats(), "pid": os.getpid()}


@ray.remote
class VerifierWorker:
    def __init__(self, settings_json: str):
        from slmflow.core.settings import VerifierSettings
        from verification.verifier import Verifier

        self._verifier = Verifier.configured(VerifierSettings.model_validate_json(settings_json))

    def verify(self, request: VerifyRequest) -> Verdict:
        return self._verifier.verify(request)

    def verify_many(self, requests: bytes) -> list[bytes | BaseException]:
        """Many requests in one call (workers.coalesce, in workers.wire's format)."""
        out: list[Verdict | BaseException] = []
        for request in wire.load_requests(VerifyRequest, requests):
            try:
                out.append(self._verifier.verify(request))
            except Exception as exc:  # one request's fault is its caller's, not the batch's
                out.append(exc)
        return wire.dump_answers(out)

    def stats(self) -> dict:
        return {"pid": os.getpid()}


@ray.remote
class RetrievalWorker:
    """Owns the store: embedded Qdrant locks its directory, so all flows share this one opener."""

    def __init__(
        self,
        qdrant_dir: str,
        url: str | None,
        api_key: str | None,
        embedding_model: str,
        embedding_runtime: EmbeddingRuntime,
        models_dir: str,
    ):
        from retrieval.embedder import Embedder
        from retrieval.retriever import Retriever
        from retrieval.store import open_store

        embedder = Embedder(embedding_model, runtime=embedding_runtime, models_dir=Path(models_dir))
        # Loaded now, not on the first query: a missing export fails the fleet's start, and the
        # first query does not pay seconds of loading.
        self._runtime = embedder.runtime
        self._retriever = Retriever(open_store(qdrant_dir, url, api_key), embedder)

    def ensure_ingested(self, collection: str, path: str):
        return self._retriever.ensure_ingested(collection, path)

    def search(self, collection: str, query: str, k: int) -> list[Evidence]:
        return self._retriever.search(collection, query, k)

    def stats(self) -> dict:
        return {"pid": os.getpid(), "collections": self._retriever.store.collections(), "embedder": self._runtime}

    def shutdown(self) -> None:
        self._retriever.close()
