"""Ingest a corpus into a collection: read, chunk, embed, upsert, then write the manifest.

Point ids are uuid5(doc + chunk index), so re-ingesting the same corpus rewrites nothing new, and a
changed document replaces its chunks. The manifest goes last: a collection without a manifest (or
with one that disagrees with its inputs) was interrupted and is rebuilt, never trusted.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from retrieval.chunking import chunk_text
from retrieval.embedder import Embedder
from retrieval.store import Chunk, VectorStore

SUFFIXES = (".md", ".txt", ".jsonl")
MAX_FILE_BYTES = 20 * 1024 * 1024


class FileProblem(BaseModel):
    path: str
    reason: str


class IngestReport(BaseModel):
    collection: str
    documents: int = 0
    chunks: int = 0
    skipped_unchanged: bool = False
    problems: list[FileProblem] = []


def discover(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)


def read_documents(path: Path) -> tuple[dict[str, str], list[FileProblem]]:
    """doc_id -> text, plus a problem per unusable file (the others still load)."""
    docs: dict[str, str] = {}
    problems: list[FileProblem] = []
    seen_hashes: dict[str, str] = {}
    base = path if path.is_dir() else path.parent
    for file in discover(path):
        rel = str(file.relative_to(base))
        raw = file.read_bytes()
        if len(raw) > MAX_FILE_BYTES:
            problems.append(FileProblem(path=rel, reason=f"larger than {MAX_FILE_BYTES >> 20} MiB"))
            continue
        if b"\x00" in raw[:8192]:
            problems.append(FileProblem(path=rel, reason="binary file"))
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.append(FileProblem(path=rel, reason=f"not UTF-8 (byte {exc.start})"))
            continue
        if not text.strip():
            problems.append(FileProblem(path=rel, reason="empty"))
            continue
        digest = hashlib.sha256(raw).hexdigest()
        if digest in seen_hashes:
            problems.append(FileProblem(path=rel, reason=f"duplicate of {seen_hashes[digest]}"))
            continue
        seen_hashes[digest] = rel
        if file.suffix.lower() == ".jsonl":
            for n, line in enumerate(text.splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    docs[f"{rel}:{record.get('id', n)}"] = str(record["text"])
                except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
                    problems.append(FileProblem(path=f"{rel}:{n}",
                                                reason='line is not a JSON object with "text"'))
        else:
            docs[rel] = text
    return docs, problems


def ingest(path: Path, collection: str, store: VectorStore, embedder: Embedder, *,
           chunk_size: int = 600, overlap: int = 100,
           progress: Callable[[int, int], None] | None = None) -> IngestReport:
    docs, problems = read_documents(path)
    hashes = {d: hashlib.sha256(t.encode()).hexdigest() for d, t in docs.items()}
    manifest: dict[str, Any] = {
        "embedding_model": embedder.name,
        "dim": embedder.dim,
        "chunk_size": chunk_size,
        "overlap": overlap,
        "documents": hashes,
    }
    report = IngestReport(collection=collection, documents=len(docs), problems=problems)
    current = store.read_manifest(collection) if store.exists(collection) else None
    if current and _same_build(current, manifest):
        report.skipped_unchanged = True
        report.chunks = current.get("chunks", 0)
        return report
    if current is None or not _same_build(current, manifest, documents=False):
        store.drop(collection)  # unfinished, or built with another embedder/chunking
        store.create(collection, embedder.dim)
        old_docs: dict[str, str] = {}
    else:
        old_docs = current["documents"]
    for doc_id in set(old_docs) - set(hashes):
        store.delete_doc(collection, doc_id)
    todo = [d for d in docs if old_docs.get(d) != hashes[d]]
    for i, doc_id in enumerate(todo, 1):
        pieces = chunk_text(docs[doc_id], chunk_size, overlap)
        vectors = embedder.embed(pieces)
        if doc_id in old_docs:
            store.delete_doc(collection, doc_id)
        store.upsert(collection, [
            Chunk(chunk_id=f"{doc_id}#{n}", doc_id=doc_id, text=text, vector=vec,
                  doc_sha256=hashes[doc_id])
            for n, (text, vec) in enumerate(zip(pieces, vectors))])
        if progress:
            progress(i, len(todo))
    report.chunks = store.count(collection)
    store.write_manifest(collection, {**manifest, "chunks": report.chunks})
    return report


def _same_build(a: dict[str, Any], b: dict[str, Any], documents: bool = True) -> bool:
    keys = ["embedding_model", "dim", "chunk_size", "overlap"] + (["documents"] if documents else [])
    return all(a.get(k) == b.get(k) for k in keys)
