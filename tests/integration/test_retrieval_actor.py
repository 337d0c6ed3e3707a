"""The retrieval actor on a local Ray: one opener of the embedded store serving concurrent searches.

Max concurrency 4 as in the fleet, 8 searches in flight: the actor's threads share one Retriever,
one embedding model and one qdrant-edge shard.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray

from retrieval.store import EdgeStore, StoreError, is_complete
from slmflow.core.settings import get_settings
from workers.actors import RetrievalWorker

pytestmark = pytest.mark.slow

DOCS = {
    "refunds.md": "Refunds go back to the original card within five working days.",
    "shipping.md": "Standard parcels arrive in three days. Express parcels arrive the next morning.",
    "hours.txt": "The shop opens at nine and closes at six, Monday to Saturday.",
    "passwords.md": "Reset a forgotten password from the link on the login page.",
}
QUERIES = {
    "when will my money come back": "refunds.md",
    "how fast is express delivery": "shipping.md",
    "what time do you open": "hours.txt",
    "I forgot my password": "passwords.md",
}


@pytest.fixture
def local_ray(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A private Ray instance, unless the session already runs one (the fleet fixture's)."""
    if ray.is_initialized():
        yield
        return
    for key, value in {
        "RAY_AUTH_MODE": "disabled",
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths have a length limit
    ray.init(num_cpus=1, include_dashboard=False, _temp_dir=temp_dir, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_concurrent_searches_through_the_actor(local_ray: None, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text)
    qdrant_dir = tmp_path / "qdrant"
    settings = get_settings()
    actor = RetrievalWorker.options(num_cpus=0, max_concurrency=4).remote(
        str(qdrant_dir),
        None,
        None,
        settings.embedding_model,
        settings.embedding_runtime,
        str(settings.models_dir),
    )
    try:
        # `make test` builds the ONNX export first (`slmflow models prepare`): the default runtime
        # is the one under test here.
        expected = settings.embedding_runtime if settings.embedding_runtime != "auto" else "onnx"
        assert ray.get(actor.stats.remote(), timeout=300)["embedder"] == expected
        report = ray.get(actor.ensure_ingested.remote("kb", str(docs)), timeout=300)
        assert report.documents == 4 and report.chunks == 4 and not report.problems
        with pytest.raises(StoreError, match="in use by another process"):
            EdgeStore(qdrant_dir)  # the actor is the one opener

        queries = list(QUERIES) * 2
        results = ray.get([actor.search.remote("kb", q, 2) for q in queries], timeout=300)
        for query, hits in zip(queries, results):
            assert len(hits) == 2 and hits[0].doc_id == QUERIES[query] and hits[0].collection == "kb"
            assert hits[0].text == DOCS[QUERIES[query]] and hits[0].score > hits[1].score
        assert ray.get(actor.ensure_ingested.remote("kb", str(docs)), timeout=300).skipped_unchanged
        ray.get(actor.shutdown.remote(), timeout=60)
    finally:
        ray.kill(actor)

    store = EdgeStore(qdrant_dir)  # released by the actor's shutdown
    try:
        assert store.count("kb") == 4 and is_complete(store.read_manifest("kb"))
    finally:
        store.close()
