"""`slmflow ingest` and `slmflow collections`, as plain functions that slmflow.cli.app registers.

The store comes from settings: a Qdrant server when QDRANT_URL is set, otherwise the embedded store
under the cache directory (one opener at a time, so these commands fail with a clear message while
a running job holds it).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from slmflow.cli.support import fail
from slmflow.core.settings import get_settings

if TYPE_CHECKING:
    from retrieval.ingest import FileProblem
    from retrieval.store import VectorStore

console = Console()
err_console = Console(stderr=True)

EXIT_INTERRUPTED = 130  # the shell's convention for SIGINT


def _open_store() -> VectorStore:
    from retrieval.store import open_store

    settings = get_settings()
    key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
    return open_store(settings.qdrant_dir, settings.qdrant_url, key)


def _print_problems(problems: list[FileProblem]) -> None:
    for p in problems:
        err_console.print(f"[yellow]skipped[/] {p.path}: {p.reason}", highlight=False)


def ingest_command(
    path: Path = typer.Argument(..., help="a .md, .txt or .jsonl file, or a folder searched recursively"),
    collection: str = typer.Option(..., "--collection", "-c", help="collection to create or update"),
    chunk_size: int = typer.Option(600, min=50, help="longest chunk, in characters"),
    overlap: int = typer.Option(
        100, min=0, help="characters of closing sentences repeated at the start of the next chunk"
    ),
) -> None:
    """Chunk, embed and store documents in a collection. Unchanged documents are skipped, changed ones
    replaced and removed ones deleted; an interrupted ingest resumes when run again. JSONL files hold
    one {"text": ..., "id": ...} object per line. Exits 1 if any file or line could not be used."""
    from retrieval.embedder import Embedder
    from retrieval.errors import RetrievalError
    from retrieval.ingest import IngestError, ingest

    started = time.perf_counter()
    try:
        store = _open_store()
    except RetrievalError as exc:
        raise fail(str(exc)) from None
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("chunks"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    )

    def advance(done: int, total: int) -> None:
        progress.update(bar, description=f"embedding {collection}", completed=done, total=total)

    try:
        with progress:
            bar = progress.add_task("reading documents, loading the embedding model", total=None)
            report = ingest(
                path,
                collection,
                store,
                Embedder.from_settings(get_settings()),
                chunk_size=chunk_size,
                overlap=overlap,
                progress=advance,
            )
    except IngestError as exc:
        _print_problems(exc.problems)
        raise fail(str(exc)) from None
    except RetrievalError as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        raise fail(
            f"interrupted before collection '{collection}' was finished; run the same command "
            "again to complete it (search refuses a half-built collection)",
            EXIT_INTERRUPTED,
        ) from None
    finally:
        store.close()

    if report.skipped_unchanged:
        console.print(
            f"collection '{collection}' is up to date: {report.documents} documents, "
            f"{report.chunks} chunks, nothing embedded"
        )
    else:
        resumed = " (resumed an interrupted ingest)" if report.resumed else ""
        console.print(
            f"collection '{collection}'{resumed}: {report.documents} documents, {report.chunks} chunks; "
            f"embedded {report.embedded_chunks} chunks of {report.embedded_documents} new or changed "
            f"documents and removed {report.removed_documents} in {time.perf_counter() - started:.1f} s"
        )
    if report.ignored_files:
        console.print(f"ignored {report.ignored_files} files that are not .md, .txt or .jsonl")
    if report.problems:
        _print_problems(report.problems)
        raise fail(f"{len(report.problems)} input(s) could not be used; the rest were ingested")


def _describe(store: VectorStore, name: str) -> dict[str, Any]:
    """A collection's live point count and its manifest, with the per-input hashes reduced to
    counts (a large corpus has one entry per document)."""
    from retrieval.store import is_complete

    manifest = store.read_manifest(name) or {}
    summary = {k: v for k, v in manifest.items() if k not in ("files", "documents", "pending")}
    summary.update(files=len(manifest.get("files", {})), documents=len(manifest.get("documents", {})))
    status = "complete" if is_complete(manifest) else "incomplete" if manifest else "no manifest"
    return {"collection": name, "status": status, "points": store.count(name), "manifest": summary}


def collections_command(
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """List collections with their point counts and manifests (embedding model, chunking, inputs).
    An incomplete collection was interrupted (or is being ingested) and is not searched."""
    from retrieval.errors import RetrievalError

    try:
        store = _open_store()
    except RetrievalError as exc:
        raise fail(str(exc)) from None
    try:
        location = store.location
        rows = [_describe(store, name) for name in store.collections()]
    except RetrievalError as exc:
        raise fail(str(exc)) from None
    finally:
        store.close()

    if as_json:
        console.print_json(json.dumps({"location": location, "collections": rows}))
        return
    if not rows:
        console.print(f"no collections in {location}", highlight=False)
        return
    table = Table(title=f"collections in {location}")
    table.add_column("collection", no_wrap=True)
    for column in ("status", "points", "docs", "embedding", "chunking", "updated (UTC)"):
        table.add_column(column)
    for row in rows:
        m = row["manifest"]
        embedding = f"{m['embedding_model']} {m['dim']}-d" if "embedding_model" in m else ""
        chunking = f"{m['chunk_size']}/{m['overlap']}" if "chunk_size" in m else ""
        status = row["status"] if row["status"] == "complete" else f"[yellow]{row['status']}[/]"
        table.add_row(
            row["collection"],
            status,
            str(row["points"]),
            str(m["documents"]),
            embedding,
            chunking,
            m.get("updated_at", "")[:16].replace("T", " "),
        )
    console.print(table)
