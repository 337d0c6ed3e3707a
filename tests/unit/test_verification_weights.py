"""Where the verifier's weights are written and read: the user's folder (settings
`verifier.weights_dir`, <cache_dir>/verifier by default) first, the package's weights otherwise;
train and calibrate never write into the package."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from slmflow.core.settings import Settings, VerifierSettings, get_settings
from tests.support.verification_data import small_copy
from tests.support.verify_cli import app, runner
from verification import paths
from verification.verifier import Verifier

ANSWER = {
    "id": "a",
    "kind": "answer",
    "question": "Language?",
    "answer": "It is written in Rust [1].",
    "evidence": ["Qdrant is written in Rust."],
}


@pytest.fixture
def user_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Settings whose cache is under tmp_path, so the default weights folder is too."""
    monkeypatch.setenv("SLMFLOW_CACHE_DIR", str(tmp_path / "cache"))
    get_settings.cache_clear()
    yield tmp_path / "cache" / "verifier"
    get_settings.cache_clear()


def packaged_bytes() -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in paths.PACKAGED_WEIGHTS.glob("*.json")}


def test_the_weights_folder_defaults_under_the_cache_and_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert Settings(cache_dir=tmp_path).verifier_weights_dir == tmp_path / "verifier"
    monkeypatch.setenv("SLMFLOW_VERIFIER__WEIGHTS_DIR", str(tmp_path / "mine"))
    assert Settings(cache_dir=tmp_path).verifier_weights_dir == tmp_path / "mine"
    # The flow hands the verifier settings to its actor as JSON: the folder travels with them.
    dumped = Settings(cache_dir=tmp_path).verifier.model_dump_json()
    assert VerifierSettings.model_validate_json(dumped).weights_dir == tmp_path / "mine"


def test_without_user_weights_the_packaged_ones_are_read(tmp_path: Path) -> None:
    verifier = Verifier.configured(VerifierSettings(weights_dir=tmp_path / "empty"))
    assert verifier.learned is not None
    assert verifier.learned.files == {"answer": paths.PACKAGED_WEIGHTS / "answer.json"}
    assert verifier.degraded == []


def test_train_writes_to_the_user_folder_and_the_verifier_reads_it_first(user_dir: Path) -> None:
    before = packaged_bytes()
    data = small_copy(user_dir.parent.parent / "data", lines=40, abstracts=20)
    result = runner.invoke(app, ["verifier", "train", "--data", str(data)])
    assert result.exit_code == 0, result.output
    assert (user_dir / "answer.json").is_file()
    assert packaged_bytes() == before
    verifier = Verifier.configured(get_settings().verifier)
    assert verifier.learned is not None and verifier.learned.files == {"answer": user_dir / "answer.json"}
    trained = json.loads((user_dir / "answer.json").read_text())
    assert verifier.learned.models["answer"].threshold == trained["threshold"]


def test_calibrate_reads_the_packaged_weights_and_writes_a_copy(user_dir: Path, tmp_path: Path) -> None:
    before = packaged_bytes()
    wrong = {**ANSWER, "id": "w", "answer": "It is written in Java [1].", "label": False}
    labelled = tmp_path / "labelled.jsonl"
    labelled.write_text("".join(json.dumps(r) + "\n" for r in [{**ANSWER, "label": True}, wrong]))
    result = runner.invoke(app, ["verifier", "calibrate", "--target-error", "0.1", "--labelled", str(labelled)])
    assert result.exit_code == 0, result.output
    assert packaged_bytes() == before
    meta = json.loads((user_dir / "answer.json").read_text())["meta"]
    assert meta["calibrated"]["target_error"] == 0.1
    assert str(paths.PACKAGED_WEIGHTS / "answer.json") in " ".join(result.output.split())


def test_without_any_weights_verify_degrades_to_rules_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, user_dir: Path
) -> None:
    monkeypatch.setattr(paths, "PACKAGED_WEIGHTS", tmp_path / "no-package-weights")
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(ANSWER) + "\n")
    result = runner.invoke(app, ["verify", "--input", str(src), "--output", str(tmp_path / "out.jsonl")])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "degraded" in text and "rule verdict" in text and "slmflow verifier train" in text
    out = json.loads((tmp_path / "out.jsonl").read_text())
    assert out["accept"] and not any(r.startswith("learned") for r in out["reasons"])
    labelled = tmp_path / "labelled.jsonl"
    labelled.write_text(json.dumps({**ANSWER, "label": True}) + "\n")
    calibrate = runner.invoke(app, ["verifier", "calibrate", "--target-error", "0.1", "--labelled", str(labelled)])
    assert calibrate.exit_code == 1 and "verifier train" in calibrate.output
