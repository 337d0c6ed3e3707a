"""Retrieval as one plain object: a store plus the embedder that fills and queries it.

The retrieval actor calls it from several threads at once. Ingesting a collection holds that
collection's lock; a search of a collection not yet seen complete takes the same lock, so it waits
for a running ingest instead of reading a half-written collection.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection
from pathlib import Path

from retrieval.embedder import Embedder
from retrieval.errors import StoreError
from retrieval.ingest import IngestReport, ingest
from retrieval.store import VectorStore, is_complete
from slmflow.core.records import Evidence


class Retriever:
    def __init__(self, store: VectorStore, embedder: Embedder):
        self.store = store
        self.embedder = embedder
        # Collections whose complete manifest was checked. With a shared server another client may
        # re-ingest one later; searches then read it while it changes, as any Qdrant client would.
        self._ready: set[str] = set()
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def _lock(self, collection: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(collection, threading.Lock())

    def ensure_ingested(
        self,
        collection: str,
        path: str | Path,
        *,
        chunk_size: int = 600,
        overlap: int = 100,
        progress: Callable[[int, int], None] | None = None,
    ) -> IngestReport:
        with self._lock(collection):
            self._ready.discard(collection)
            report = ingest(
                Path(path),
                collection,
                self.store,
                self.embedder,
                chunk_size=chunk_size,
                overlap=overlap,
                progress=progress,
            )
            self._ready.add(collection)
        return report

    def _check_ready(self, collection: str) -> None:
        with self._lock(collection):
            if collection in self._ready:
                return
            manifest = self.store.read_manifest(collection) if self.store.exists(collection) else None
            if manifest is None:
                raise StoreError(f"collection '{collection}' does not exist on {self.store.location}; ingest it first")
            if not is_complete(manifest):
                raise StoreError(
                    f"collection '{collection}' is incomplete: its last ingest was "
                    "interrupted or is still running; run the ingest again to finish it"
                )
            built_with = (manifest.get("embedding_model"), manifest.get("dim"))
            if built_with != (self.embedder.name, self.embedder.dim):
                raise StoreError(
                    f"collection '{collection}' was embedded with {manifest.get('embedding_model')} "
                    f"({manifest.get('dim')}-d) but queries use {self.embedder.name} "
                    f"({self.embedder.dim}-d); ingest it again with this model"
                )
            self._ready.add(collection)

    def search(self, collection: str, query: str, k: int = 3, doc_ids: Collection[str] | None = None) -> list[Evidence]:
        """The k chunks nearest to `query`, best first; `doc_ids` restricts them to those documents."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        if collection not in self._ready:
            self._check_ready(collection)
        return self.store.search(collection, self.embedder.embed([query])[0], k, doc_ids=doc_ids)

    def close(self) -> None:
        self.store.close()
