"""Fixtures shared by the unit tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from retrieval.store import EdgeStore, ServerStore, VectorStore

SERVER_URL = os.environ.get("QDRANT_URL")


@pytest.fixture(
    params=[
        "edge",
        "local",
        pytest.param(
            "server",
            marks=pytest.mark.skipif(not SERVER_URL, reason="QDRANT_URL not set: no Qdrant server to test against"),
        ),
    ]
)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorStore]:
    if request.param == "edge":
        s: VectorStore = EdgeStore(tmp_path / "qdrant")
    elif request.param == "local":
        from qdrant_client import QdrantClient

        s = ServerStore(QdrantClient(":memory:"), ":memory:")
    else:
        s = ServerStore.connect(SERVER_URL, os.environ.get("QDRANT_API_KEY"))
    yield s
    s.close()
