"""Ingest a corpus into a collection: read, chunk, embed in batches, upsert, then mark it complete.

Point ids are uuid5(doc id + chunk index), so writing a chunk twice is harmless, and only documents
whose text changed are embedded again. The manifest is the collection's state:

* `status: building` is written before the first change and rewritten after every batch that
  finishes a document. `documents` lists the documents fully stored so far; `pending` those whose
  points may exist but are not finished (being written, or being deleted). An interrupted ingest
  thus leaves a collection that search refuses, and the next ingest resumes it: it keeps the listed
  documents that are still current, deletes every other one that may have points, and embeds the
  rest.
* `status: complete` is written last, with the embedding model and version, dimensions, chunking,
  the HNSW graph the store builds, and the sha256 of every input. When those match the inputs, the
  next ingest does nothing. A collection built with another graph is rebuilt: the store's search
  beam is sized for its own graph (retrieval.store.HNSW_GRAPH).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from retrieval.chunking import chunk_text
from retrieval.embedder import Embedder
from retrieval.errors import RetrievalError
from retrieval.store import (
    BUILDING,
    COMPLETE,
    HNSW_GRAPH,
    Chunk,
    VectorStore,
    check_collection_name,
    is_complete,
)

SUFFIXES = (".md", ".txt", ".jsonl")
UNSUPPORTED = {".pdf": "PDF is not supported: convert it to .txt or .md first"}
MAX_FILE_BYTES = 20 * 1024 * 1024
_BINARY_SNIFF_BYTES = 8192
_MAX_LINE_PROBLEMS = 10  # per JSONL file; a wholly malformed file should not flood the report

# Manifest keys that decide whether existing vectors can be reused at all.
_BUILD_KEYS = ("embedding_model", "embedding_version", "dim", "distance", "hnsw", "chunker", "chunk_size", "overlap")
_INPUT_KEYS = ("source", "files", "documents")


class FileProblem(BaseModel):
    path: str
    reason: str


class IngestReport(BaseModel):
    collection: str
    documents: int = 0
    chunks: int = 0
    skipped_unchanged: bool = False
    resumed: bool = False  # the previous ingest of this collection was interrupted
    embedded_documents: int = 0  # new or changed documents embedded by this run
    embedded_chunks: int = 0
    removed_documents: int = 0
    ignored_files: int = 0  # files of other types in a folder, left alone
    problems: list[FileProblem] = []


class IngestError(RetrievalError):
    """Nothing was ingested: bad arguments, no usable input, or a collection slmflow did not make."""

    def __init__(self, message: str, problems: Iterable[FileProblem] = ()):
        super().__init__(message)
        self.problems = list(problems)


@dataclass
class Corpus:
    documents: dict[str, str] = field(default_factory=dict)  # doc id -> text
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256 of its bytes
    problems: list[FileProblem] = field(default_factory=list)
    ignored: int = 0


class _Unusable(Exception):
    """Why one file cannot be read; the others still load."""


def discover(path: Path) -> tuple[list[Path], int]:
    """Files to read (hidden paths skipped) and how many others were ignored. A file named
    directly is always read, so an unsupported type is reported rather than silently dropped;
    PDFs in a folder are reported too, since a user would expect them ingested."""
    if path.is_file():
        return [path], 0
    files: list[Path] = []
    ignored = 0
    for file in sorted(path.rglob("*")):
        if any(part.startswith(".") for part in file.relative_to(path).parts) or not file.is_file():
            continue
        if file.suffix.lower() in SUFFIXES or file.suffix.lower() in UNSUPPORTED:
            files.append(file)
        else:
            ignored += 1
    return files, ignored


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n:,} bytes"


def _read_text(file: Path) -> tuple[str, str]:
    """The file's text and the sha256 of its bytes."""
    suffix = file.suffix.lower()
    if suffix not in SUFFIXES:
        raise _Unusable(
            UNSUPPORTED.get(suffix, f"unsupported file type '{suffix or file.name}' (use .md, .txt or .jsonl)")
        )
    try:
        size = file.stat().st_size
        if size > MAX_FILE_BYTES:
            raise _Unusable(f"too large: {_size(size)}, the limit is {_size(MAX_FILE_BYTES)}")
        raw = file.read_bytes()
    except OSError as exc:
        raise _Unusable(f"cannot read: {exc.strerror or exc}") from exc
    if not raw.strip():
        raise _Unusable("empty")
    if b"\x00" in raw[:_BINARY_SNIFF_BYTES]:
        raise _Unusable("binary file (NUL bytes; UTF-16 text must be converted to UTF-8)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _Unusable(f"not UTF-8 (invalid byte at offset {exc.start})") from exc
    if not text.strip():
        raise _Unusable("empty")
    return text, hashlib.sha256(raw).hexdigest()


def _jsonl_problem(corpus: Corpus, rel: str, n: int, line: str) -> str | None:
    """Add line `n` as a document, or say why it cannot be one."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        return f"invalid JSON: {exc.msg}"
    if not isinstance(record, dict) or not isinstance(record.get("text"), str) or not record["text"].strip():
        return 'not a JSON object with a non-empty "text" string'
    doc_id = f"{rel}:{record.get('id', n)}"
    if doc_id in corpus.documents:
        return f"duplicate id {record.get('id', n)!r}"
    corpus.documents[doc_id] = record["text"]
    return None


def _add_jsonl(corpus: Corpus, rel: str, text: str) -> None:
    """One document per line: a JSON object with a "text" string and an optional "id"."""
    bad = 0
    for n, line in enumerate(text.splitlines(), 1):
        reason = _jsonl_problem(corpus, rel, n, line) if line.strip() else None
        if reason is None:
            continue
        bad += 1
        if bad <= _MAX_LINE_PROBLEMS:
            corpus.problems.append(FileProblem(path=f"{rel}:{n}", reason=reason))
    if bad > _MAX_LINE_PROBLEMS:
        corpus.problems.append(FileProblem(path=rel, reason=f"{bad - _MAX_LINE_PROBLEMS} more bad lines"))


def read_documents(path: Path) -> Corpus:
    """Every usable document under `path`, plus a problem for each file or line that is not."""
    if not path.exists():
        raise IngestError(f"{path} does not exist")
    files, ignored = discover(path)
    corpus = Corpus(ignored=ignored)
    base = path if path.is_dir() else path.parent
    first_with: dict[str, str] = {}  # sha256 -> the first file with those bytes
    for file in files:
        rel = file.relative_to(base).as_posix()
        try:
            text, digest = _read_text(file)
            if digest in first_with:
                raise _Unusable(f"duplicate of {first_with[digest]}")
        except _Unusable as exc:
            corpus.problems.append(FileProblem(path=rel, reason=str(exc)))
            continue
        first_with[digest] = rel
        corpus.files[rel] = digest
        if file.suffix.lower() == ".jsonl":
            _add_jsonl(corpus, rel, text)
        else:
            corpus.documents[rel] = text
    return corpus


def _current_manifest(store: VectorStore, collection: str) -> dict[str, Any] | None:
    if not store.exists(collection):
        return None
    manifest = store.read_manifest(collection)
    if manifest is None and store.shared and store.count(collection) > 0:
        raise IngestError(
            f"collection '{collection}' on {store.location} has points but no slmflow manifest, so "
            "it was not made by `slmflow ingest` and will not be overwritten; choose another name"
        )
    return manifest


def ingest(
    path: Path,
    collection: str,
    store: VectorStore,
    embedder: Embedder,
    *,
    chunk_size: int = 600,
    overlap: int = 100,
    progress: Callable[[int, int], None] | None = None,
) -> IngestReport:
    """Bring `collection` in line with the documents under `path`. `progress(done, total)` is
    called in chunks embedded, first with done=0; an exception it raises aborts the ingest and
    leaves the collection incomplete (and resumable)."""
    check_collection_name(collection)
    if chunk_size <= 0 or overlap < 0 or overlap >= chunk_size:
        raise IngestError(f"need 0 <= overlap < chunk size, got chunk size {chunk_size}, overlap {overlap}")
    corpus = read_documents(Path(path))
    if not corpus.documents:
        why = "every file failed" if corpus.problems else f"no {', '.join(SUFFIXES)} files"
        raise IngestError(f"nothing to ingest from {path}: {why}", corpus.problems)

    hashes = {d: hashlib.sha256(t.encode()).hexdigest() for d, t in corpus.documents.items()}
    target: dict[str, Any] = {
        "status": COMPLETE,
        "embedding_model": embedder.name,
        "embedding_version": embedder.version,
        "dim": embedder.dim,
        "distance": "cosine",
        "hnsw": HNSW_GRAPH,
        "chunker": "sentences",
        "chunk_size": chunk_size,
        "overlap": overlap,
        "source": str(Path(path).resolve()),
        "inputs_sha256": hashlib.sha256(
            "".join(f"{h}  {f}\n" for f, h in sorted(corpus.files.items())).encode()
        ).hexdigest(),
        "files": corpus.files,
        "documents": hashes,
    }
    report = IngestReport(
        collection=collection, documents=len(hashes), problems=corpus.problems, ignored_files=corpus.ignored
    )
    current = _current_manifest(store, collection)
    if is_complete(current) and all(current.get(k) == target[k] for k in _BUILD_KEYS + _INPUT_KEYS):
        report.skipped_unchanged = True
        report.chunks = int(current.get("chunks", 0))
        return report

    stored: dict[str, str] = {}  # doc id -> sha256, fully written and current
    stale: set[str] = set()  # doc ids whose points may exist but must go
    if current is None or any(current.get(k) != target[k] for k in _BUILD_KEYS):
        store.drop(collection)
        store.create(collection, target["dim"])
    else:
        report.resumed = current.get("status") == BUILDING
        previous: dict[str, str] = current.get("documents", {})
        stored = {d: h for d, h in previous.items() if hashes.get(d) == h}
        stale = (set(previous) | set(current.get("pending", []))) - set(stored)
        report.removed_documents = len(set(previous) - set(hashes))
    todo = [d for d in hashes if d not in stored]
    checkpoint = {**target, "status": BUILDING, "documents": dict(stored), "pending": sorted(stale | set(todo))}
    store.write_manifest(collection, checkpoint)
    if stale:
        store.delete_docs(collection, stale)

    pieces = [
        (doc_id, n, text)
        for doc_id in todo
        for n, text in enumerate(chunk_text(corpus.documents[doc_id], chunk_size, overlap))
    ]
    unwritten = Counter(doc_id for doc_id, _, _ in pieces)
    if progress:
        progress(0, len(pieces))
    for start in range(0, len(pieces), embedder.batch_size):
        batch = pieces[start : start + embedder.batch_size]
        vectors = embedder.embed([text for _, _, text in batch])
        store.upsert(
            collection,
            [
                Chunk(chunk_id=f"{doc_id}#{n}", doc_id=doc_id, text=text, vector=vector, doc_sha256=hashes[doc_id])
                for (doc_id, n, text), vector in zip(batch, vectors)
            ],
        )
        unwritten.subtract(doc_id for doc_id, _, _ in batch)
        finished = [d for d in dict.fromkeys(doc_id for doc_id, _, _ in batch) if unwritten[d] == 0]
        if finished:
            checkpoint["documents"].update((d, hashes[d]) for d in finished)
            store.write_manifest(collection, checkpoint)
        if progress:
            progress(start + len(batch), len(pieces))

    store.optimize(collection)
    report.embedded_documents = len(todo)
    report.embedded_chunks = len(pieces)
    report.chunks = store.count(collection)
    store.write_manifest(
        collection, {**target, "chunks": report.chunks, "updated_at": datetime.now(UTC).isoformat(timespec="seconds")}
    )
    return report
