"""Retrieval as one plain object: a store plus the embedder that fills and queries it."""

from __future__ import annotations

from pathlib import Path

from retrieval.embedder import Embedder
from retrieval.ingest import IngestReport, ingest
from retrieval.store import StoreError, VectorStore
from slmflow.records import Evidence


class Retriever:
    def __init__(self, store: VectorStore, embedder: Embedder):
        self.store = store
        self.embedder = embedder
        self._ready: set[str] = set()  # collections whose manifest we have seen

    def ensure_ingested(self, collection: str, path: str | Path, **kwargs) -> IngestReport:
        report = ingest(Path(path), collection, self.store, self.embedder, **kwargs)
        self._ready.add(collection)
        return report

    def search(self, collection: str, query: str, k: int = 3) -> list[Evidence]:
        if collection not in self._ready:
            if not self.store.exists(collection) or self.store.read_manifest(collection) is None:
                raise StoreError(f"collection '{collection}' does not exist or was never finished")
            self._ready.add(collection)
        return self.store.search(collection, self.embedder.embed([query])[0], k)

    def close(self) -> None:
        self.store.close()
