"""One store interface, two backends: Qdrant's engine in-process (default) or Qdrant through
qdrant-client (a server by `url=`, or local mode for tests and benchmarks).

The embedded backend is `qdrant-edge-py`: Qdrant's own Rust engine (HNSW, WAL, payload indexes)
with one shard per collection directory. It is pre-1.0, so nothing outside this module touches it.
qdrant-client's own local mode was measured against it and lost: it is pure-Python exact search
(p50 126 ms at 100k chunks against 0.65 ms, and nothing persists; see docs/retrieval.md), so it
serves only as a test double for the server code path.

Each collection carries a manifest (see retrieval.ingest). A collection whose manifest is missing
or not `complete` is unfinished and must not be searched.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import threading
import uuid
import warnings
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Concatenate, ParamSpec, Protocol, TypeGuard, TypeVar

from retrieval.errors import StoreError
from slmflow.core.records import Evidence

if TYPE_CHECKING:
    from qdrant_client import QdrantClient

_NAMESPACE = uuid.UUID("6f6e1f0e-4a8e-5d1c-9a57-736c6d666c6f")
_COLLECTION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_PAYLOAD_FIELDS = ["chunk_id", "doc_id", "text"]
_DELETE_BATCH = 1000  # doc ids per delete-by-filter request
# The HNSW graph every collection is built with; Qdrant's defaults are m 16, ef_construct 100. On
# the 100 tuning questions at 100k MiniLM-derived points (docs/retrieval.md), that graph needed a
# search beam of 256 for recall@5 0.96; this denser one reaches 0.966 at 32 and 0.986 at 64, in
# less time per search, for an index build about twice as long (small beside embedding the chunks).
HNSW_GRAPH = {"m": 24, "ef_construct": 200}
FULL_SCAN_KB = 10_000  # Qdrant's default: smaller segments are searched exactly, without the graph
# Search-time beam on that graph: 64 leaves a margin over recall@5 0.95 at no measurable cost.
DEFAULT_HNSW_EF = 64

COMPLETE = "complete"
BUILDING = "building"


def point_id(chunk_id: str) -> str:
    """Qdrant ids must be ints or UUIDs; the readable chunk id lives in the payload."""
    return str(uuid.uuid5(_NAMESPACE, chunk_id))


def check_collection_name(name: str) -> str:
    """Collection names become directory names, so they are kept to a portable alphabet."""
    if not _COLLECTION_NAME.fullmatch(name):
        raise StoreError(
            f"invalid collection name {name!r}: use 1-64 letters, digits, '_' or '-', starting with a letter or digit"
        )
    return name


def is_complete(manifest: dict[str, Any] | None) -> TypeGuard[dict[str, Any]]:
    return manifest is not None and manifest.get("status") == COMPLETE


@dataclass(frozen=True)
class Chunk:
    chunk_id: str
    doc_id: str
    text: str
    vector: Sequence[float]
    doc_sha256: str


class VectorStore(Protocol):
    location: str
    # False when the store is slmflow's private directory, so a collection without a manifest can
    # only be an interrupted build of ours; True for a server that other clients also write to.
    shared: bool

    def exists(self, collection: str) -> bool: ...
    def create(self, collection: str, dim: int) -> None: ...
    def drop(self, collection: str) -> None: ...
    def upsert(self, collection: str, chunks: Sequence[Chunk]) -> None: ...
    def delete_docs(self, collection: str, doc_ids: Collection[str]) -> None: ...
    def optimize(self, collection: str) -> None: ...
    def search(
        self, collection: str, vector: Sequence[float], k: int, doc_ids: Collection[str] | None = None
    ) -> list[Evidence]:
        """The k nearest chunks, best first; `doc_ids` keeps only those documents' chunks.

        A filtered search is exact over the chunks the payload index selects. Qdrant's filtered
        HNSW search, measured at 100k points with a filter keeping 10% of them, returned 1-2 of 5
        results (recall@5 0.004): the filter cut the graph into pieces. Exact costs ~2 ms per 10k
        matching chunks, and a document filter usually keeps far fewer."""
        ...

    def count(self, collection: str) -> int: ...
    def read_manifest(self, collection: str) -> dict[str, Any] | None: ...
    def write_manifest(self, collection: str, manifest: dict[str, Any]) -> None: ...
    def collections(self) -> list[str]: ...
    def close(self) -> None: ...


def _payload(c: Chunk) -> dict[str, Any]:
    return {"chunk_id": c.chunk_id, "doc_id": c.doc_id, "text": c.text, "doc_sha256": c.doc_sha256}


def _evidence(collection: str, payload: dict[str, Any], score: float) -> Evidence:
    return Evidence(
        chunk_id=payload["chunk_id"],
        doc_id=payload["doc_id"],
        text=payload["text"],
        score=float(score),
        collection=collection,
    )


def _batches(items: Collection[str], size: int) -> list[list[str]]:
    ordered = sorted(items)
    return [ordered[i : i + size] for i in range(0, len(ordered), size)]


def _lock_directory(root: Path) -> IO[str]:
    """flock, not a pid file: the kernel drops the lock when its holder dies, even by SIGKILL, so
    a crashed actor never leaves the directory locked. The pid inside is only for the message."""
    try:
        handle = (root / ".slmflow.lock").open("a+")
    except OSError as exc:
        raise StoreError(f"cannot lock Qdrant directory {root}: {exc}") from exc
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip()
        handle.close()
        by = f" (pid {holder})" if holder else ""
        raise StoreError(
            f"Qdrant directory {root} is in use by another process{by}; an embedded store has one "
            "opener at a time (a running slmflow job holds it through its retrieval worker). Wait "
            "for it to finish, or set QDRANT_URL to share collections through a Qdrant server."
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


class EdgeStore:
    """Embedded Qdrant engine. One shard directory per collection under `root`; the manifest is a
    JSON file beside it. The whole root is locked for as long as the store is open, because
    qdrant-edge only locks a shard's WAL once that shard is loaded, and a second opener could
    otherwise drop or rebuild a collection underneath the first."""

    VECTOR = "dense"
    shared = False

    def __init__(self, root: str | Path, hnsw_ef: int | None = DEFAULT_HNSW_EF):
        self.root = Path(root)
        self.location = str(self.root)
        self.hnsw_ef = hnsw_ef
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create Qdrant directory {self.root}: {exc}") from exc
        self._lock: IO[str] | None = _lock_directory(self.root)
        self._shards: dict[str, Any] = {}
        self._mutex = threading.RLock()  # shard open/create/drop; queries run concurrently

    def _dir(self, collection: str) -> Path:
        return self.root / check_collection_name(collection)

    def _check_open(self) -> None:
        if self._lock is None:
            raise StoreError(f"store {self.root} is closed")

    def _shard(self, collection: str) -> Any:
        with self._mutex:
            self._check_open()
            if collection not in self._shards:
                from qdrant_edge import EdgeShard

                if not self.exists(collection):
                    raise StoreError(f"collection '{collection}' does not exist in {self.root}")
                path = self._dir(collection) / "shard"
                try:
                    self._shards[collection] = EdgeShard.load(str(path))
                except Exception as exc:  # qdrant-edge raises bare Exception for every failure
                    raise StoreError(f"cannot open collection shard {path}: {exc}") from exc
            return self._shards[collection]

    def exists(self, collection: str) -> bool:
        return (self._dir(collection) / "shard").is_dir()

    def collections(self) -> list[str]:
        return sorted(
            p.name for p in self.root.iterdir() if _COLLECTION_NAME.fullmatch(p.name) and (p / "shard").is_dir()
        )

    def create(self, collection: str, dim: int) -> None:
        from qdrant_edge import (
            Distance,
            EdgeConfig,
            EdgeShard,
            EdgeVectorParams,
            HnswIndexConfig,
            PayloadSchemaType,
            UpdateOperation,
        )

        config = EdgeConfig(
            vectors={self.VECTOR: EdgeVectorParams(size=dim, distance=Distance.Cosine)},
            hnsw_config=HnswIndexConfig(
                m=HNSW_GRAPH["m"], ef_construct=HNSW_GRAPH["ef_construct"], full_scan_threshold=FULL_SCAN_KB
            ),
        )
        with self._mutex:
            self._check_open()
            self._dir(collection).mkdir(parents=True, exist_ok=True)
            shard = EdgeShard.create(str(self._dir(collection) / "shard"), config)
            shard.update(UpdateOperation.create_field_index("doc_id", PayloadSchemaType.Keyword))
            self._shards[collection] = shard

    def drop(self, collection: str) -> None:
        with self._mutex:
            self._check_open()
            shard = self._shards.pop(collection, None)
            if shard is not None:
                shard.close()
            shutil.rmtree(self._dir(collection), ignore_errors=True)

    def upsert(self, collection: str, chunks: Sequence[Chunk]) -> None:
        from qdrant_edge import Point, UpdateOperation

        points = [Point(point_id(c.chunk_id), {self.VECTOR: list(c.vector)}, _payload(c)) for c in chunks]
        shard = self._shard(collection)
        shard.update(UpdateOperation.upsert_points(points))
        shard.flush()  # the ingest checkpoint written next must not claim unflushed points

    def delete_docs(self, collection: str, doc_ids: Collection[str]) -> None:
        from qdrant_edge import FieldCondition, Filter, MatchAny, UpdateOperation

        shard = self._shard(collection)
        for batch in _batches(doc_ids, _DELETE_BATCH):
            flt = Filter(must=[FieldCondition(key="doc_id", match=MatchAny(any=batch))])
            shard.update(UpdateOperation.delete_points_by_filter(flt))
        shard.flush()

    def optimize(self, collection: str) -> None:
        """Builds the HNSW index in-process (nothing runs in the background here); below Qdrant's
        indexing threshold this is a no-op and search scans the few points exactly."""
        shard = self._shard(collection)
        shard.optimize()
        shard.flush()

    def search(
        self, collection: str, vector: Sequence[float], k: int, doc_ids: Collection[str] | None = None
    ) -> list[Evidence]:
        from qdrant_edge import FieldCondition, Filter, MatchAny, Query, QueryRequest, SearchParams

        if doc_ids is not None and not doc_ids:
            return []
        flt = (
            None
            if doc_ids is None
            else Filter(must=[FieldCondition(key="doc_id", match=MatchAny(any=sorted(doc_ids)))])
        )
        hits = self._shard(collection).query(
            QueryRequest(
                query=Query.Nearest(list(vector), using=self.VECTOR),
                limit=k,
                filter=flt,
                with_payload=_PAYLOAD_FIELDS,
                params=SearchParams(hnsw_ef=self.hnsw_ef, exact=flt is not None),
            )
        )
        return [_evidence(collection, h.payload, h.score) for h in hits]

    def count(self, collection: str) -> int:
        from qdrant_edge import CountRequest

        return int(self._shard(collection).count(CountRequest(exact=True)))

    def read_manifest(self, collection: str) -> dict[str, Any] | None:
        path = self._dir(collection) / "manifest.json"
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise StoreError(f"cannot read manifest {path}: {exc}") from exc

    def write_manifest(self, collection: str, manifest: dict[str, Any]) -> None:
        """Atomic replace, so a crash leaves the old manifest or the new one, never half of one."""
        self._check_open()
        path = self._dir(collection) / "manifest.json"
        tmp = path.with_suffix(".tmp")
        with tmp.open("w") as fh:
            json.dump(manifest, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)

    def close(self) -> None:
        with self._mutex:
            for shard in self._shards.values():
                shard.close()
            self._shards.clear()
            if self._lock is not None:
                self._lock.close()  # releases the flock
                self._lock = None


P = ParamSpec("P")
R = TypeVar("R")


def _server_call(method: Callable[Concatenate[ServerStore, P], R]) -> Callable[Concatenate[ServerStore, P], R]:
    """Network and API failures become StoreError naming the server, so callers handle one type."""

    @wraps(method)
    def call(self: ServerStore, *args: P.args, **kwargs: P.kwargs) -> R:
        from qdrant_client.http.exceptions import ApiException

        try:
            return method(self, *args, **kwargs)
        except ApiException as exc:
            raise StoreError(f"Qdrant at {self.location}: {exc}") from exc

    return call


class ServerStore:
    """Qdrant through qdrant-client: a server or cluster (`connect(url, api_key)`), or any client
    given, e.g. local mode `QdrantClient(":memory:")` in tests and benchmarks. The manifest is kept
    in a companion collection so every client of the same server sees it."""

    MANIFESTS = "slmflow_manifests"
    shared = True

    def __init__(self, client: QdrantClient, location: str, hnsw_ef: int | None = DEFAULT_HNSW_EF):
        self._client = client
        self.location = location
        self.hnsw_ef = hnsw_ef

    @classmethod
    def connect(cls, url: str, api_key: str | None = None, timeout_s: int = 10) -> ServerStore:
        from qdrant_client import QdrantClient

        # Its own version check runs in a background thread and only warns; listing collections
        # instead fails here, naming the URL, rather than halfway through an ingest.
        client = QdrantClient(url=url, api_key=api_key, timeout=timeout_s, check_compatibility=False)
        store = cls(client, url)
        store.collections()
        return store

    def _name(self, collection: str) -> str:
        if collection == self.MANIFESTS:
            raise StoreError(f"collection name '{self.MANIFESTS}' is reserved for slmflow manifests")
        return check_collection_name(collection)

    @_server_call
    def exists(self, collection: str) -> bool:
        return self._client.collection_exists(self._name(collection))

    @_server_call
    def collections(self) -> list[str]:
        names = [c.name for c in self._client.get_collections().collections]
        return sorted(n for n in names if n != self.MANIFESTS)

    @_server_call
    def create(self, collection: str, dim: int) -> None:
        from qdrant_client import models

        self._client.create_collection(
            self._name(collection),
            vectors_config=models.VectorParams(size=dim, distance=models.Distance.COSINE),
            hnsw_config=models.HnswConfigDiff(
                m=HNSW_GRAPH["m"], ef_construct=HNSW_GRAPH["ef_construct"], full_scan_threshold=FULL_SCAN_KB
            ),
        )
        with warnings.catch_warnings():  # local mode has no payload indexes and says so
            warnings.filterwarnings("ignore", message="Payload indexes have no effect in the local Qdrant")
            self._client.create_payload_index(collection, "doc_id", models.PayloadSchemaType.KEYWORD)

    @_server_call
    def drop(self, collection: str) -> None:
        self._client.delete_collection(self._name(collection))
        if self._client.collection_exists(self.MANIFESTS):
            self._client.delete(self.MANIFESTS, points_selector=[point_id(collection)], wait=True)

    @_server_call
    def upsert(self, collection: str, chunks: Sequence[Chunk]) -> None:
        from qdrant_client import models

        self._client.upsert(
            self._name(collection),
            wait=True,
            points=[
                models.PointStruct(id=point_id(c.chunk_id), vector=list(c.vector), payload=_payload(c)) for c in chunks
            ],
        )

    @_server_call
    def delete_docs(self, collection: str, doc_ids: Collection[str]) -> None:
        from qdrant_client import models

        for batch in _batches(doc_ids, _DELETE_BATCH):
            self._client.delete(
                self._name(collection),
                wait=True,
                points_selector=models.Filter(
                    must=[models.FieldCondition(key="doc_id", match=models.MatchAny(any=batch))]
                ),
            )

    def optimize(self, collection: str) -> None:
        """A server indexes in the background and searches unindexed segments exactly meanwhile."""

    @_server_call
    def search(
        self, collection: str, vector: Sequence[float], k: int, doc_ids: Collection[str] | None = None
    ) -> list[Evidence]:
        from qdrant_client import models

        if doc_ids is not None and not doc_ids:
            return []
        flt = (
            None
            if doc_ids is None
            else models.Filter(must=[models.FieldCondition(key="doc_id", match=models.MatchAny(any=sorted(doc_ids)))])
        )
        params = models.SearchParams(hnsw_ef=self.hnsw_ef, exact=flt is not None)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Local mode performs exact")
            hits = self._client.query_points(
                self._name(collection),
                query=list(vector),
                limit=k,
                query_filter=flt,
                with_payload=_PAYLOAD_FIELDS,
                search_params=params,
            ).points
        return [_evidence(collection, h.payload or {}, h.score) for h in hits]

    @_server_call
    def count(self, collection: str) -> int:
        return self._client.count(self._name(collection), exact=True).count

    @_server_call
    def read_manifest(self, collection: str) -> dict[str, Any] | None:
        if not self._client.collection_exists(self.MANIFESTS):
            return None
        found = self._client.retrieve(self.MANIFESTS, ids=[point_id(self._name(collection))], with_payload=True)
        return json.loads(found[0].payload["manifest"]) if found and found[0].payload else None

    @_server_call
    def write_manifest(self, collection: str, manifest: dict[str, Any]) -> None:
        from qdrant_client import models

        if not self._client.collection_exists(self.MANIFESTS):
            self._client.create_collection(self.MANIFESTS, vectors_config={})
        self._client.upsert(
            self.MANIFESTS,
            wait=True,
            points=[
                models.PointStruct(
                    id=point_id(self._name(collection)), vector={}, payload={"manifest": json.dumps(manifest)}
                )
            ],
        )

    def close(self) -> None:
        self._client.close()


def open_store(qdrant_dir: str | Path, url: str | None = None, api_key: str | None = None) -> VectorStore:
    return ServerStore.connect(url, api_key) if url else EdgeStore(qdrant_dir)
