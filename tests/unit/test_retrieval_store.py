"""The VectorStore contract on every backend: embedded qdrant-edge, qdrant-client local mode (the
server code path without a server), and a real Qdrant server when QDRANT_URL is set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from retrieval.store import HNSW_GRAPH, Chunk, EdgeStore, ServerStore, StoreError, VectorStore

DIM = 8
SERVER_URL = os.environ.get("QDRANT_URL")


def _chunks(doc_id: str, n: int, seed: int) -> list[Chunk]:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, DIM))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return [
        Chunk(
            chunk_id=f"{doc_id}#{i}", doc_id=doc_id, text=f"{doc_id} part {i}", vector=v.tolist(), doc_sha256="0" * 64
        )
        for i, v in enumerate(vectors)
    ]


@pytest.fixture
def name(store: VectorStore) -> Iterator[str]:
    """Unique per test, since a server outlives the test; dropped afterwards."""
    collection = f"t_{uuid.uuid4().hex[:12]}"
    yield collection
    if store.exists(collection):
        store.drop(collection)


def test_upsert_search_count_and_idempotent_ids(store: VectorStore, name: str) -> None:
    store.create(name, DIM)
    a, b = _chunks("a.md", 3, 1), _chunks("b.md", 2, 2)
    store.upsert(name, a + b)
    store.upsert(name, a)  # same chunk ids, same points
    assert store.count(name) == 5
    hits = store.search(name, a[1].vector, 3)
    assert hits[0].chunk_id == "a.md#1" and hits[0].doc_id == "a.md" and hits[0].text == "a.md part 1"
    assert hits[0].collection == name and hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_search_filtered_by_documents(store: VectorStore, name: str) -> None:
    store.create(name, DIM)
    store.upsert(name, _chunks("a.md", 3, 1) + _chunks("b.md", 3, 2) + _chunks("c.md", 3, 3))
    hits = store.search(name, _chunks("a.md", 1, 1)[0].vector, 10, doc_ids={"b.md", "c.md"})
    assert len(hits) == 6 and {h.doc_id for h in hits} == {"b.md", "c.md"}
    assert store.search(name, _chunks("a.md", 1, 1)[0].vector, 10, doc_ids=set()) == []


def test_delete_docs_removes_only_those_documents(store: VectorStore, name: str) -> None:
    store.create(name, DIM)
    store.upsert(name, _chunks("a.md", 3, 1) + _chunks("b.md", 2, 2) + _chunks("c.md", 1, 3))
    store.delete_docs(name, {"a.md", "c.md", "never-stored.md"})
    assert store.count(name) == 2
    assert {h.doc_id for h in store.search(name, _chunks("a.md", 1, 1)[0].vector, 10)} == {"b.md"}


def test_manifest_and_collections_lifecycle(store: VectorStore, name: str) -> None:
    assert not store.exists(name) and name not in store.collections()
    store.create(name, DIM)
    assert store.exists(name) and name in store.collections()
    assert store.read_manifest(name) is None
    store.write_manifest(name, {"status": "building", "documents": {"a.md": "ff"}})
    store.write_manifest(name, {"status": "complete", "documents": {}})
    assert store.read_manifest(name) == {"status": "complete", "documents": {}}
    store.drop(name)
    assert not store.exists(name) and name not in store.collections()
    store.create(name, DIM)
    assert store.read_manifest(name) is None  # a dropped collection leaves no manifest behind


@pytest.mark.parametrize("bad", ["", "../escape", "a/b", ".hidden", "x" * 65, "sp ace"])
def test_collection_names_are_checked(store: VectorStore, bad: str) -> None:
    with pytest.raises(StoreError, match="invalid collection name"):
        store.create(bad, DIM)


def test_server_store_reserves_the_manifest_collection() -> None:
    from qdrant_client import QdrantClient

    store = ServerStore(QdrantClient(":memory:"), ":memory:")
    with pytest.raises(StoreError, match="reserved"):
        store.create(ServerStore.MANIFESTS, DIM)


def test_unreachable_server_is_a_store_error_naming_it() -> None:
    with pytest.raises(StoreError, match="127.0.0.1:9"):
        ServerStore.connect("http://127.0.0.1:9", timeout_s=2)


# ---- embedded store: persistence and the directory lock ------------------------------------------


def test_edge_store_persists_across_reopen(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path)
    store.create("docs", DIM)
    store.upsert("docs", _chunks("a.md", 4, 1))
    store.write_manifest("docs", {"status": "complete"})
    store.close()
    reopened = EdgeStore(tmp_path)
    assert reopened.collections() == ["docs"] and reopened.count("docs") == 4
    assert reopened.read_manifest("docs") == {"status": "complete"}
    reopened.close()


def test_edge_collections_are_built_with_the_store_graph(tmp_path: Path) -> None:
    """The search beam (DEFAULT_HNSW_EF) was chosen for this graph, so the engine must build it."""
    store = EdgeStore(tmp_path)
    store.create("docs", DIM)
    store.close()
    config = json.loads((tmp_path / "docs" / "shard" / "edge_config.json").read_text())  # qdrant-edge's own
    assert {k: config["hnsw_config"][k] for k in HNSW_GRAPH} == HNSW_GRAPH


@pytest.mark.skipif(not SERVER_URL, reason="QDRANT_URL not set: no Qdrant server to test against")
@pytest.mark.parametrize("store", ["server"], indirect=True)  # local mode keeps no index config
def test_server_collections_are_built_with_the_store_graph(store: ServerStore, name: str) -> None:
    store.create(name, DIM)
    hnsw = store._client.get_collection(name).config.hnsw_config
    assert (hnsw.m, hnsw.ef_construct) == (HNSW_GRAPH["m"], HNSW_GRAPH["ef_construct"])


def test_qdrant_edge_alone_refuses_a_loaded_shard_with_an_obscure_error(tmp_path: Path) -> None:
    """Why EdgeStore locks the whole directory itself: qdrant-edge locks only a loaded shard's WAL
    and says so as a bare Exception ("Can't init WAL: WouldBlock"); an unloaded collection, the
    manifests and drop() (rmtree) are not protected at all."""
    from qdrant_edge import Distance, EdgeConfig, EdgeShard, EdgeVectorParams

    config = EdgeConfig(vectors={"dense": EdgeVectorParams(size=DIM, distance=Distance.Cosine)})
    shard = EdgeShard.create(str(tmp_path / "shard"), config)
    with pytest.raises(Exception, match="WouldBlock"):
        EdgeShard.load(str(tmp_path / "shard"))
    shard.close()
    EdgeShard.load(str(tmp_path / "shard")).close()


def test_second_opener_in_process_gets_a_clear_error(tmp_path: Path) -> None:
    first = EdgeStore(tmp_path)
    with pytest.raises(StoreError, match=f"{tmp_path}.*in use by another process"):
        EdgeStore(tmp_path)
    first.close()
    EdgeStore(tmp_path).close()  # closing released the lock


def test_lock_held_by_another_process_and_released_when_it_is_killed(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from retrieval.store import EdgeStore; "
            f"store = EdgeStore({str(tmp_path)!r}); print('locked', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(StoreError, match=f"in use by another process \\(pid {holder.pid}\\)"):
            EdgeStore(tmp_path)
    finally:
        holder.kill()
        holder.wait()
    EdgeStore(tmp_path).close()  # a killed holder leaves no stale lock


def test_closed_store_refuses_work(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path)
    store.create("docs", DIM)
    store.close()
    for work in (lambda: store.count("docs"), lambda: store.drop("docs"), lambda: store.write_manifest("docs", {})):
        with pytest.raises(StoreError, match="closed"):
            work()
    assert store.exists("docs")  # nothing was touched without the lock
