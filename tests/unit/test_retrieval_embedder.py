"""The embedder's runtimes: the ONNX export agrees with torch on real questions and abstracts,
both share one version (so a collection made with one is searched with the other), and without the
export or onnxruntime the embedder falls back to torch and says why, or fails when ONNX was
required. The int8 form is close to torch, has a version of its own and is added to an older
export. The export is built once per session into a temporary folder."""

from __future__ import annotations

import json
import logging
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from retrieval import embedder as embedder_module
from retrieval import onnx_export
from retrieval.embedder import Embedder, model_path
from retrieval.errors import EmbedderError
from retrieval.ingest import ingest
from retrieval.onnx_encoder import INT8_FILE, MARKER, MODEL_FILE
from retrieval.onnx_export import AGREEMENT, INT8_AGREEMENT, build, prepare
from retrieval.retriever import Retriever
from retrieval.store import EdgeStore
from slmflow.core.settings import BUNDLED
from tests.support.data import shared_data


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder holding the bundled model's export, where Embedder looks for it."""
    root = tmp_path_factory.mktemp("models")
    prepare(Embedder(models_dir=root), log=lambda _: None)
    return root


@pytest.fixture
def fresh_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing loaded yet in this process, so the runtime is chosen again."""
    monkeypatch.setattr(embedder_module, "_loaded", {})


def real_texts() -> list[str]:
    """PubMedQA questions and whole abstracts (most run past the 256-token limit), HotpotQA
    questions and paragraphs."""
    pubmed = json.loads(shared_data("pubmedqa", "pqal_dev.json").read_text())
    hotpot = json.loads(shared_data("hotpotqa_sample", "hotpot_dev_distractor_first53.json").read_text())
    texts = []
    for item in list(pubmed.values())[:25]:
        texts += [item["QUESTION"], " ".join(item["CONTEXTS"])]
    for item in hotpot[:10]:
        texts.append(item["question"])
        texts += [f"{title}. {''.join(sentences)}" for title, sentences in item["context"][:3]]
    return texts


def test_onnx_agrees_with_torch_on_real_texts(models_dir: Path) -> None:
    texts = real_texts()
    onnx = Embedder(runtime="onnx", models_dir=models_dir, batch_size=16)
    torch = Embedder(runtime="torch")
    assert (onnx.runtime, torch.runtime) == ("onnx", "torch")
    expected = np.asarray(torch.embed(texts))
    batched = np.asarray(onnx.embed(texts))  # padded batches, sorted by length
    single = np.asarray([onnx.embed([t])[0] for t in texts[:20]])  # no padding
    assert batched.shape == expected.shape == (len(texts), onnx.dim) == (len(texts), 384)
    assert (batched * expected).sum(1).min() >= AGREEMENT
    assert (single * expected[:20]).sum(1).min() >= AGREEMENT
    assert np.allclose(np.linalg.norm(batched, axis=1), 1, atol=1e-5)


def test_int8_is_close_to_torch_on_real_texts_and_has_its_own_version(models_dir: Path) -> None:
    texts = real_texts()
    int8 = Embedder(runtime="onnx-int8", models_dir=models_dir, batch_size=16)
    torch = Embedder(runtime="torch")
    assert int8.runtime == "onnx-int8" and int8.version == f"{torch.version}+int8"
    expected = np.asarray(torch.embed(texts))
    got = np.asarray(int8.embed(texts))
    cosines = (got * expected).sum(1)
    assert cosines.min() >= INT8_AGREEMENT and cosines.min() < AGREEMENT  # close, not the same
    assert np.allclose(np.linalg.norm(got, axis=1), 1, atol=1e-5)
    meta = json.loads((int8.onnx_dir / MARKER).read_text())
    assert INT8_AGREEMENT <= meta["min_cosine_vs_torch_int8"] < meta["min_cosine_vs_torch"]


def test_int8_needs_its_file_and_auto_does_not(models_dir: Path, tmp_path: Path, fresh_cache: None) -> None:
    older = Embedder(models_dir=tmp_path).onnx_dir  # an export made before the int8 form existed
    shutil.copytree(Embedder(models_dir=models_dir).onnx_dir, older, ignore=shutil.ignore_patterns(INT8_FILE))
    with pytest.raises(EmbedderError, match="no int8 export of all-MiniLM-L6-v2 .* `slmflow models prepare` builds it"):
        Embedder(runtime="onnx-int8", models_dir=tmp_path).embed(["query"])
    assert Embedder(models_dir=tmp_path).runtime == "onnx"


def test_prepare_adds_the_int8_form_to_an_older_export(
    models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    older = Embedder(models_dir=tmp_path).onnx_dir
    shutil.copytree(Embedder(models_dir=models_dir).onnx_dir, older, ignore=shutil.ignore_patterns(INT8_FILE))
    monkeypatch.setattr(onnx_export, "_build", lambda *a, **k: pytest.fail("rebuilt an existing export"))
    assert prepare(Embedder(models_dir=tmp_path), log=lambda _: None) == older
    assert (older / INT8_FILE).is_file() and not [p for p in older.iterdir() if p.name.startswith(".")]
    assert json.loads((older / MARKER).read_text())["min_cosine_vs_torch_int8"] >= INT8_AGREEMENT


def test_an_int8_form_that_disagrees_is_never_written(
    models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    older = Embedder(models_dir=tmp_path).onnx_dir
    shutil.copytree(Embedder(models_dir=models_dir).onnx_dir, older, ignore=shutil.ignore_patterns(INT8_FILE))
    monkeypatch.setattr(onnx_export, "_agreement", lambda st, encoder: 0.95)
    with pytest.raises(EmbedderError, match="int8 export disagrees with torch: cosine 0.950000"):
        prepare(Embedder(models_dir=tmp_path), log=lambda _: None)
    assert sorted(p.name for p in older.iterdir()) == sorted([MARKER, MODEL_FILE, "tokenizer.json"])


def test_switching_to_int8_re_embeds_a_collection(models_dir: Path, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "refunds.md").write_text("Refunds go back to the original card within five working days.")
    store = EdgeStore(tmp_path / "qdrant")
    try:
        ingest(docs, "kb", store, Embedder(runtime="onnx", models_dir=models_dir))
        again = ingest(docs, "kb", store, Embedder(runtime="onnx-int8", models_dir=models_dir))
        hits = Retriever(store, Embedder(runtime="onnx-int8", models_dir=models_dir)).search("kb", "money back", k=1)
    finally:
        store.close()
    assert not again.skipped_unchanged and again.embedded_chunks == 1
    assert hits[0].doc_id.endswith("refunds.md")


def test_concurrent_queries_get_their_own_vectors(models_dir: Path) -> None:
    """The retrieval actor runs searches on several threads against one encoder."""
    embedder = Embedder(runtime="onnx", models_dir=models_dir)
    texts = real_texts()[:40]
    expected = [embedder.embed([t])[0] for t in texts]
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda t: embedder.embed([t])[0], texts * 3))
    assert np.allclose(got, expected * 3, atol=1e-6)


def test_a_collection_embedded_with_torch_is_searched_with_onnx(models_dir: Path, tmp_path: Path) -> None:
    """Same version, so the manifest accepts either runtime and re-ingesting embeds nothing."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "refunds.md").write_text("Refunds go back to the original card within five working days.")
    (docs / "hours.md").write_text("The shop opens at nine and closes at six, Monday to Saturday.")
    torch, onnx = Embedder(runtime="torch"), Embedder(runtime="onnx", models_dir=models_dir)
    assert torch.version == onnx.version
    store = EdgeStore(tmp_path / "qdrant")
    try:
        ingest(docs, "kb", store, torch)
        assert ingest(docs, "kb", store, onnx).skipped_unchanged
        by_torch = Retriever(store, torch).search("kb", "when do I get my money back", k=2)
        by_onnx = Retriever(store, onnx).search("kb", "when do I get my money back", k=2)
    finally:
        store.close()
    assert [h.chunk_id for h in by_onnx] == [h.chunk_id for h in by_torch]
    assert np.allclose([h.score for h in by_onnx], [h.score for h in by_torch], atol=1e-4)


def test_no_export_falls_back_to_torch_or_fails_when_onnx_is_required(
    tmp_path: Path, fresh_cache: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="retrieval.embedder"):
        assert Embedder(models_dir=tmp_path).runtime == "torch"
    assert "embedding with torch" in caplog.text and "`slmflow models prepare` builds it" in caplog.text
    with pytest.raises(EmbedderError, match=f"no ONNX export of all-MiniLM-L6-v2 in {tmp_path}"):
        Embedder(runtime="onnx", models_dir=tmp_path).embed(["query"])


def test_missing_onnxruntime_falls_back_to_torch(
    models_dir: Path, fresh_cache: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    with caplog.at_level(logging.WARNING, logger="retrieval.embedder"):
        assert Embedder(models_dir=models_dir).runtime == "torch"
    assert "onnxruntime is not installed" in caplog.text
    with pytest.raises(EmbedderError, match="onnxruntime is not installed"):
        Embedder(runtime="onnx", models_dir=models_dir).embed(["query"])


def test_damaged_export_falls_back_to_torch(models_dir: Path, tmp_path: Path, fresh_cache: None) -> None:
    damaged = Embedder(models_dir=tmp_path).onnx_dir
    shutil.copytree(Embedder(models_dir=models_dir).onnx_dir, damaged)
    (damaged / MODEL_FILE).write_bytes(b"not a model")
    assert Embedder(models_dir=tmp_path).runtime == "torch"
    with pytest.raises(EmbedderError, match="cannot load the ONNX export"):
        Embedder(runtime="onnx", models_dir=tmp_path).embed(["query"])


def test_an_export_that_disagrees_is_never_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(onnx_export, "_agreement", lambda st, encoder: 0.98)
    out = tmp_path / "export"
    with pytest.raises(EmbedderError, match="disagrees with torch: cosine 0.980000"):
        build(model_path(BUNDLED), "v", out, log=lambda _: None)
    assert not out.exists() and list(tmp_path.iterdir()) == []  # no staging folder left behind


def test_unsupported_pooling_is_refused(tmp_path: Path) -> None:
    model = tmp_path / "cls-model"
    shutil.copytree(model_path(BUNDLED), model, ignore=shutil.ignore_patterns("*.safetensors"))
    (model / "model.safetensors").symlink_to(Path(model_path(BUNDLED)) / "model.safetensors")
    config = model / "1_Pooling" / "config.json"
    config.write_text(
        json.dumps(
            {**json.loads(config.read_text()), "pooling_mode_mean_tokens": False, "pooling_mode_cls_token": True}
        )
    )
    with pytest.raises(EmbedderError, match="only a transformer with mean pooling"):
        build(str(model), "v", tmp_path / "export", log=lambda _: None)


def test_prepare_reuses_a_built_export(models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(onnx_export, "_load", lambda *a, **k: pytest.fail("loaded the model for nothing"))
    embedder = Embedder(models_dir=models_dir)
    assert prepare(embedder, log=lambda _: None) == embedder.onnx_dir
    assert (embedder.onnx_dir / MARKER).is_file()


@pytest.mark.parametrize(
    ("runtime", "exit_code", "message"),
    [("onnx", 1, "error: boom"), ("onnx-int8", 1, "error: boom"), ("auto", 0, "warning: boom; queries will be")],
)
def test_models_prepare_fails_only_when_onnx_is_required(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runtime: str, exit_code: int, message: str
) -> None:
    from typer.testing import CliRunner

    from slmflow.cli.app import app
    from slmflow.core import models as model_prep
    from slmflow.core.settings import get_settings

    def broken_export(*args: object, **kwargs: object) -> Path:
        raise EmbedderError("boom")

    monkeypatch.setattr(model_prep, "prepare", lambda settings: None)  # the small model is not under test
    monkeypatch.setattr(onnx_export, "_load", lambda source: None)  # nor is loading the embedder
    monkeypatch.setattr(onnx_export, "_build", broken_export)
    monkeypatch.setenv("SLMFLOW_MODELS_DIR", str(tmp_path))
    monkeypatch.setenv("SLMFLOW_EMBEDDING_RUNTIME", runtime)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["models", "prepare"], env={"COLUMNS": "200"})
    finally:
        get_settings.cache_clear()
    assert result.exit_code == exit_code and message in result.output
