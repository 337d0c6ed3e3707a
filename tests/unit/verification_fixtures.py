"""Small real fixtures for the verifier's tests, written from the development data
(`../shared/data`) by the test setup, never committed: a few dozen lines of each source."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from verification.paths import DEFAULT_DATA


def data_dir() -> Path:
    """The development data; tests that need it skip only where it is absent (CI has it)."""
    if not (DEFAULT_DATA / "begin").is_dir():
        pytest.skip(f"development data not found at {DEFAULT_DATA}")
    return DEFAULT_DATA


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
