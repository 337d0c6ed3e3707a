"""Ray actors: thin wrappers that build a plain object inside the actor process and expose it.

All the logic lives in the wrapped classes (engines, FrontierClient, Verifier, Retriever), which
are tested without Ray. Model actors are async so that one actor serves many concurrent requests
and vLLM batches them.
"""

from __future__ import annotations

import asyncio
import os

import ray

from slmflow.core.records import Draft, Evidence, GenerationRequest, Verdict, VerifyRequest


@ray.remote
class SmallModelWorker:
    def __init__(
        self, model_path: str, model_name: str, vllm_kwargs: dict, env: dict[str, str], max_in_flight: int = 256
    ):
        os.environ.update(env)
        from workers.engines import NULL_MODEL, NullEngine, VLLMEngine
        from workers.serving import ServedEngine

        engine = NullEngine() if model_path == NULL_MODEL else VLLMEngine(model_path, model_name, **vllm_kwargs)
        self._served = ServedEngine(engine, max_in_flight)

    async def generate(self, request: GenerationRequest) -> Draft:
        return await self._served.generate(request)

    async def generate_many(self, requests: list[GenerationRequest]) -> list[Draft | BaseException]:
        """Concurrent requests in one call (workers.coalesce); the engine batches them as before."""
        return await asyncio.gather(*(self._served.generate(r) for r in requests), return_exceptions=True)

    async def stats(self) -> dict:
        return {**self._served.stats(), "pid": os.getpid()}

    async def shutdown(self) -> None:
        await self._served.engine.shutdown()


@ray.remote
class FrontierWorker:
    def __init__(self, base_url: str, model: str, api_key: str | None, label: str, timeout_s: float):
        from workers.frontier import FrontierClient

        self._client = FrontierClient(base_url, model, api_key, label=label, timeout_s=timeout_s)

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

    def verify_many(self, requests: list[VerifyRequest]) -> list[Verdict | BaseException]:
        out: list[Verdict | BaseException] = []
        for request in requests:
            try:
                out.append(self._verifier.verify(request))
            except Exception as exc:  # one request's fault is its caller's, not the batch's
                out.append(exc)
        return out

    def stats(self) -> dict:
        return {"pid": os.getpid()}


@ray.remote
class RetrievalWorker:
    """Owns the store: embedded Qdrant locks its directory, so all flows share this one opener."""

    def __init__(self, qdrant_dir: str, url: str | None, api_key: str | None, embedding_model: str):
        from retrieval.embedder import Embedder
        from retrieval.retriever import Retriever
        from retrieval.store import open_store

        self._retriever = Retriever(open_store(qdrant_dir, url, api_key), Embedder(embedding_model))

    def ensure_ingested(self, collection: str, path: str):
        return self._retriever.ensure_ingested(collection, path)

    def search(self, collection: str, query: str, k: int) -> list[Evidence]:
        return self._retriever.search(collection, query, k)

    def stats(self) -> dict:
        return {"pid": os.getpid(), "collections": self._retriever.store.collections()}

    def shutdown(self) -> None:
        self._retriever.close()
