"""Run an embedding model exported to ONNX (see retrieval.onnx_export) with ONNX Runtime.

Why not torch: one short query through sentence-transformers on torch took ~8 ms of the ~9 ms an
end-to-end search cost at 100k chunks; the same graph under ONNX Runtime takes a fraction of that
(docs/retrieval.md has the figures). Nothing here imports torch, so a process that only searches
never loads it.

Thread-safe: `InferenceSession.run` may be called concurrently, and the tokenizer's truncation and
padding are fixed in its saved file and never changed after loading (changing them while another
thread encodes is what makes Hugging Face tokenizers raise "Already borrowed").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from retrieval.errors import EmbedderError

if TYPE_CHECKING:
    from tokenizers import Encoding

MODEL_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"  # the same graph with int8 weights (retrieval.onnx_export.quantize)
TOKENIZER_FILE = "tokenizer.json"
MARKER = "slmflow-onnx.json"  # written last by the export: its presence means the folder is complete


class OnnxEncoder:
    def __init__(self, folder: Path, model_file: str = MODEL_FILE):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        try:
            self.meta = json.loads((folder / MARKER).read_text())
            self._tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
            options = ort.SessionOptions()
            # The retrieval actor shares two cores with a model engine: threads that spin while
            # waiting for work would take cycles from it for no gain on one short query.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            self._session = ort.InferenceSession(str(folder / model_file), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors for a damaged file
            raise EmbedderError(f"cannot load the ONNX export in {folder}: {exc}") from exc
        self.dim = int(self.meta["dim"])
        self.quantized = model_file == INT8_FILE
        self._inputs = [i.name for i in self._session.get_inputs()]

    def _feed(self, encodings: list[Encoding]) -> dict[str, np.ndarray]:
        columns = {
            "input_ids": [e.ids for e in encodings],
            "attention_mask": [e.attention_mask for e in encodings],
            "token_type_ids": [e.type_ids for e in encodings],
        }
        return {name: np.asarray(columns[name], dtype=np.int64) for name in self._inputs}

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        """Unit vectors, one row per text. Texts are stripped and batched longest first, as
        sentence-transformers does, so that a batch pads to lengths that are close together."""
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            encodings = self._tokenizer.encode_batch([texts[i].strip() for i in rows])
            out[rows] = self._session.run(None, self._feed(encodings))[0]
        return out
