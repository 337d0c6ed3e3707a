"""The shared evaluation data (settings `data_dir`, `../shared/data` beside the checkout) for the tests
that read it. CI has it, so there a missing folder fails the test instead of skipping it: a data
test that silently skipped in CI would prove nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from slmflow.core.settings import get_settings


def shared_data(*parts: str) -> Path:
    """The path under the data folder; skips the test when it is missing (fails it under CI=1)."""
    path = get_settings().data_dir.joinpath(*parts)
    if not path.exists():
        message = f"shared data not found: {path} (set SLMFLOW_DATA_DIR)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path
