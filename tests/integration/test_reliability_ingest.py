"""Reliability scenario 5, bad input: corpus fuzzing for retrieval ingest (docs/reliability.md).

tests/unit/test_retrieval_ingest.py checks one example of each bad file (empty, binary, latin-1,
too large, bad JSONL lines, PDF, duplicates) by its exact reason. Here Hypothesis generates whole
corpora of such files mixed with good ones (random bytes, arbitrary Unicode, UTF-16, Latin-1,
JSON lines of arbitrary values, files over the size limit, blanks, hidden and unknown types) and
checks the contract on every one of them: ingest either builds the collection or raises
IngestError and touches nothing; every file is accounted for (a document, a reported problem, or
ignored for its type); what is stored is exactly the usable documents' chunks; and ingesting the
same corpus again changes nothing.

A deterministic hashing embedder stands in for the model: the contract under test is the
reading, chunking and bookkeeping, not the embedding.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retrieval import ingest as ingest_module
from retrieval.chunking import chunk_text
from retrieval.ingest import SUFFIXES, IngestError, ingest, read_documents
from retrieval.store import COMPLETE, EdgeStore, ServerStore

LIMIT = 2_000  # MAX_FILE_BYTES while fuzzing, so "huge" files stay cheap to generate
SIZE, OVERLAP = 80, 20


class HashEmbedder:
    """Deterministic 16-dim unit vectors from sha256: the Embedder interface ingest uses."""

    name, version, dim, batch_size = "hash-test", "1", 16, 4

    def embed(self, texts: list[str]) -> list[list[float]]:
        vectors = []
        for text in texts:
            raw = [b + 1.0 for b in hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()[:16]]
            norm = math.sqrt(sum(x * x for x in raw))
            vectors.append([x / norm for x in raw])
        return vectors


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["id", "text", "other"]), inner, max_size=3)
    ),
    max_leaves=8,
)
prose = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=300)

contents = st.one_of(
    prose.map(str.encode),  # arbitrary Unicode, UTF-8
    st.binary(max_size=300),  # random bytes
    prose.map(lambda t: t.encode("utf-16")),  # NUL bytes
    prose.map(lambda t: t.encode("latin-1", "ignore") + b"\xe9"),  # not UTF-8
    st.sampled_from([b"", b" \n\t\n", "\ufeff".encode()]),  # empty or blank (BOM only)
    st.binary(min_size=LIMIT + 1, max_size=LIMIT + 64),  # over the size limit
    st.lists(json_values.map(json.dumps) | st.text(max_size=20), max_size=6).map(
        lambda lines: "\n".join(lines).encode()
    ),  # JSON lines, good and bad
    st.just(b"Refunds are issued within ten days. Parcels ship in two days."),  # good, duplicable
)
names = st.tuples(
    st.sampled_from(["", "sub/", ".hidden/"]),
    st.text("abcxyz019_-", min_size=1, max_size=6),
    st.sampled_from([*SUFFIXES, ".MD", ".pdf", ".png", ""]),
).map("".join)
corpora = st.dictionaries(names, contents, min_size=1, max_size=8)


def _write(root: Path, corpus: dict[str, bytes]) -> None:
    for rel, data in corpus.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)


def _accounted(rel: str, report, manifest: dict | None) -> bool:
    """A file ended as input (its sha256 in the manifest), or with its own problem, or ignored."""
    in_manifest = manifest is not None and rel in manifest["files"]
    problem = any(p.path == rel or p.path.startswith(f"{rel}:") for p in report.problems)
    suffix = Path(rel).suffix.lower()
    ignored = suffix not in SUFFIXES and suffix != ".pdf"
    return in_manifest or problem or ignored


@pytest.mark.parametrize("engine", ["edge", "local"])
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(corpus=corpora)
def test_fuzzed_corpus_is_ingested_or_refused_and_every_file_accounted_for(
    engine: str, corpus: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    from qdrant_client import QdrantClient

    monkeypatch.setattr(ingest_module, "MAX_FILE_BYTES", LIMIT)
    tmp = Path(tempfile.mkdtemp(prefix="slmfuzz-"))
    store = EdgeStore(tmp / "qdrant") if engine == "edge" else ServerStore(QdrantClient(":memory:"), ":memory:")
    try:
        docs = tmp / "docs"
        docs.mkdir()
        _write(docs, corpus)
        visible = [rel for rel in corpus if not rel.startswith(".hidden/")]
        try:
            report = ingest(docs, "fuzz", store, HashEmbedder(), chunk_size=SIZE, overlap=OVERLAP)
        except IngestError as exc:
            # Nothing usable: refused with every file's problem, and the store is untouched.
            assert str(exc) and store.collections() == []
            assert all(_accounted(rel, exc, None) for rel in visible), (exc, exc.problems)
            return
        manifest = store.read_manifest("fuzz")
        assert manifest["status"] == COMPLETE
        assert all(_accounted(rel, report, manifest) for rel in visible), report
        assert not any(p.path.startswith(".hidden/") for p in report.problems)
        usable = read_documents(docs).documents
        assert report.documents == len(usable) == len(manifest["documents"]) > 0
        expected = sum(len(chunk_text(text, SIZE, OVERLAP)) for text in usable.values())
        assert report.chunks == store.count("fuzz") == expected
        again = ingest(docs, "fuzz", store, HashEmbedder(), chunk_size=SIZE, overlap=OVERLAP)
        assert again.skipped_unchanged and store.count("fuzz") == expected
    finally:
        store.close()
        shutil.rmtree(tmp, ignore_errors=True)


def test_file_over_the_real_limit_is_refused_without_reading_it(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "good.md").write_text("Parcels ship within two days.")
    with open(docs / "huge.txt", "wb") as f:  # sparse: 21 MiB on paper, nothing on disk
        f.truncate(ingest_module.MAX_FILE_BYTES + 2**20)
    store = EdgeStore(tmp_path / "qdrant")
    try:
        report = ingest(docs, "big", store, HashEmbedder())
    finally:
        store.close()
    assert [(p.path, p.reason) for p in report.problems] == [("huge.txt", "too large: 21.0 MiB, the limit is 20.0 MiB")]
    assert report.documents == 1
