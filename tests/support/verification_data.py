"""Small real fixtures for the verifier's tests, written from the shared evaluation data by the
test setup, never committed: a few dozen lines of each source."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.data import shared_data


def data_dir() -> Path:
    """The shared data folder with the verifier's sources (skips where absent, fails under CI=1)."""
    for source in ("begin", "big_bench_mistake", "gsm8k_model_answers", "pubmedqa"):
        shared_data(source)
    return shared_data()


def small_copy(root: Path, lines: int = 80, abstracts: int = 40) -> Path:
    """The first `lines` rows of BEGIN's CMU-DoG and Topical-Chat files and the first `abstracts`
    PubMedQA items, in the real files' formats: enough to train on in seconds."""
    src = data_dir()
    (root / "begin").mkdir(parents=True)
    for split in ("dev_cmu", "dev_tc"):
        rows = (src / "begin" / f"begin_{split}.tsv").read_text(encoding="utf-8").splitlines()[: lines + 1]
        (root / "begin" / f"begin_{split}.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    pubmed = json.loads((src / "pubmedqa" / "pqal_dev.json").read_text())
    (root / "pubmedqa").mkdir()
    (root / "pubmedqa" / "pqal_dev.json").write_text(json.dumps(dict(list(pubmed.items())[:abstracts])))
    return root
