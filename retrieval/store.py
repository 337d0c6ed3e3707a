"""One store interface, two backends: Qdrant's engine in-process (default) or a Qdrant server.

The embedded backend is `qdrant-edge-py`: Qdrant's own Rust engine (HNSW, WAL, payload indexes)
with one shard per collection directory. It is pre-1.0, so nothing outside this module touches it.
"""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from slmflow.records import Evidence

_NAMESPACE = uuid.UUID("6f6e1f0e-4a8e-5d1c-9a57-736c6d666c6f")


def point_id(chunk_id: str) -> str:
    """Qdrant ids must be ints or UUIDs; the readable chunk id lives in the payload."""
    return str(uuid.uuid5(_NAMESPACE, chunk_id))


@dataclass(frozen=True)
class Chunk:
    chunk_id: str
    doc_id: str
    text: str
    vector: list[float]
    doc_sha256: str


class StoreError(RuntimeError):
    pass


class VectorStore(Protocol):
    def exists(self, collection: str) -> bool: ...
    def create(self, collection: str, dim: int) -> None: ...
    def drop(self, collection: str) -> None: ...
    def upsert(self, collection: str, chunks: list[Chunk]) -> None: ...
    def delete_doc(self, collection: str, doc_id: str) -> None: ...
    def search(self, collection: str, vector: list[float], k: int) -> list[Evidence]: ...
    def count(self, collection: str) -> int: ...
    def read_manifest(self, collection: str) -> dict[str, Any] | None: ...
    def write_manifest(self, collection: str, manifest: dict[str, Any]) -> None: ...
    def collections(self) -> list[str]: ...
    def close(self) -> None: ...


def _payload(c: Chunk) -> dict[str, Any]:
    return {"chunk_id": c.chunk_id, "doc_id": c.doc_id, "text": c.text, "doc_sha256": c.doc_sha256}


def _evidence(collection: str, payload: dict[str, Any], score: float) -> Evidence:
    return Evidence(chunk_id=payload["chunk_id"], doc_id=payload["doc_id"], text=payload["text"],
                    score=float(score), collection=collection)


class EdgeStore:
    """Embedded Qdrant engine. One shard directory per collection under `root`; the manifest is a
    JSON file beside it, written last, so a collection without one was never finished."""

    VECTOR = "dense"

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._shards: dict[str, Any] = {}

    def _dir(self, collection: str) -> Path:
        return self.root / collection

    def _shard(self, collection: str):
        if collection not in self._shards:
            from qdrant_edge import EdgeShard

            if not self.exists(collection):
                raise StoreError(f"collection '{collection}' does not exist")
            self._shards[collection] = EdgeShard.load(str(self._dir(collection) / "shard"))
        return self._shards[collection]

    def exists(self, collection: str) -> bool:
        return (self._dir(collection) / "shard").exists()

    def collections(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if (p / "shard").exists())

    def create(self, collection: str, dim: int) -> None:
        from qdrant_edge import Distance, EdgeConfig, EdgeShard, EdgeVectorParams

        shard_dir = self._dir(collection) / "shard"
        shard_dir.mkdir(parents=True, exist_ok=True)
        config = EdgeConfig(vectors={self.VECTOR: EdgeVectorParams(size=dim, distance=Distance.Cosine)})
        self._shards[collection] = EdgeShard.create(str(shard_dir), config)

    def drop(self, collection: str) -> None:
        shard = self._shards.pop(collection, None)
        if shard is not None:
            shard.close()
        shutil.rmtree(self._dir(collection), ignore_errors=True)

    def upsert(self, collection: str, chunks: list[Chunk]) -> None:
        from qdrant_edge import Point, UpdateOperation

        points = [Point(point_id(c.chunk_id), {self.VECTOR: c.vector}, _payload(c)) for c in chunks]
        shard = self._shard(collection)
        shard.update(UpdateOperation.upsert_points(points))
        shard.flush()

    def delete_doc(self, collection: str, doc_id: str) -> None:
        from qdrant_edge import FieldCondition, Filter, MatchValue, UpdateOperation

        flt = Filter(must=[FieldCondition(key="doc_id", match=MatchValue(value=doc_id))])
        self._shard(collection).update(UpdateOperation.delete_points_by_filter(flt))

    def search(self, collection: str, vector: list[float], k: int) -> list[Evidence]:
        from qdrant_edge import Query, QueryRequest

        hits = self._shard(collection).query(
            QueryRequest(query=Query.Nearest(vector, using=self.VECTOR), limit=k, with_payload=True))
        return [_evidence(collection, h.payload, h.score) for h in hits]

    def count(self, collection: str) -> int:
        from qdrant_edge import CountRequest

        return int(self._shard(collection).count(CountRequest(exact=True)))

    def read_manifest(self, collection: str) -> dict[str, Any] | None:
        path = self._dir(collection) / "manifest.json"
        return json.loads(path.read_text()) if path.exists() else None

    def write_manifest(self, collection: str, manifest: dict[str, Any]) -> None:
        path = self._dir(collection) / "manifest.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(manifest, indent=2))
        tmp.replace(path)

    def close(self) -> None:
        for shard in self._shards.values():
            shard.close()
        self._shards.clear()


class ServerStore:
    """A Qdrant server or cluster through qdrant-client (`url=`, optional API key). The manifest
    is kept in a companion collection so any client of the same server sees it."""

    MANIFESTS = "slmflow_manifests"

    def __init__(self, url: str, api_key: str | None = None):
        from qdrant_client import QdrantClient

        self._client = QdrantClient(url=url, api_key=api_key)

    def exists(self, collection: str) -> bool:
        return self._client.collection_exists(collection)

    def collections(self) -> list[str]:
        names = [c.name for c in self._client.get_collections().collections]
        return sorted(n for n in names if n != self.MANIFESTS)

    def create(self, collection: str, dim: int) -> None:
        from qdrant_client import models

        self._client.create_collection(
            collection, vectors_config=models.VectorParams(size=dim, distance=models.Distance.COSINE))
        self._client.create_payload_index(collection, "doc_id", models.PayloadSchemaType.KEYWORD)

    def drop(self, collection: str) -> None:
        self._client.delete_collection(collection)
        if self._client.collection_exists(self.MANIFESTS):
            self._client.delete(self.MANIFESTS, points_selector=[point_id(collection)])

    def upsert(self, collection: str, chunks: list[Chunk]) -> None:
        from qdrant_client import models

        self._client.upsert(collection, wait=True, points=[
            models.PointStruct(id=point_id(c.chunk_id), vector=c.vector, payload=_payload(c))
            for c in chunks])

    def delete_doc(self, collection: str, doc_id: str) -> None:
        from qdrant_client import models

        self._client.delete(collection, wait=True, points_selector=models.Filter(must=[
            models.FieldCondition(key="doc_id", match=models.MatchValue(value=doc_id))]))

    def search(self, collection: str, vector: list[float], k: int) -> list[Evidence]:
        hits = self._client.query_points(collection, query=vector, limit=k, with_payload=True).points
        return [_evidence(collection, h.payload, h.score) for h in hits]

    def count(self, collection: str) -> int:
        return self._client.count(collection, exact=True).count

    def read_manifest(self, collection: str) -> dict[str, Any] | None:
        if not self._client.collection_exists(self.MANIFESTS):
            return None
        found = self._client.retrieve(self.MANIFESTS, ids=[point_id(collection)], with_payload=True)
        return json.loads(found[0].payload["manifest"]) if found else None

    def write_manifest(self, collection: str, manifest: dict[str, Any]) -> None:
        from qdrant_client import models

        if not self._client.collection_exists(self.MANIFESTS):
            self._client.create_collection(self.MANIFESTS, vectors_config={})
        self._client.upsert(self.MANIFESTS, wait=True, points=[models.PointStruct(
            id=point_id(collection), vector={}, payload={"manifest": json.dumps(manifest)})])

    def close(self) -> None:
        self._client.close()


def open_store(qdrant_dir: Path, url: str | None = None, api_key: str | None = None) -> VectorStore:
    return ServerStore(url, api_key) if url else EdgeStore(qdrant_dir)
