"""Environments for the child processes tests start."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.support.openai_server import ScriptedOpenAIServer


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without Ray, Prefect, Qdrant or slmflow settings, plus `extra`: a child
    configured only by what the test passes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "PREFECT_", "SLMFLOW_", "QDRANT_"))}
    env.update({"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", **extra})
    return env


def null_stack_settings(root: Path, frontier: ScriptedOpenAIServer) -> dict[str, str]:
    """slmflow settings for a stack on the null engine (no inference) with its state under `root`
    (short names: Ray's socket paths under it must stay < 107 bytes) and `frontier` priced as a
    listed model."""
    return {
        "SLMFLOW_SMALL_MODEL": "null",
        "SLMFLOW_CACHE_DIR": str(root / "c"),
        "SLMFLOW_STATE_DIR": str(root / "s"),
        "SLMFLOW_QDRANT_DIR": str(root / "q"),
        "SLMFLOW_RESULTS_DIR": str(root / "runs"),
        "SLMFLOW_FRONTIER_BASE_URL": frontier.base_url,
        "SLMFLOW_FRONTIER_MODEL": frontier.model,
        "SLMFLOW_PRICE_ALIASES": frontier.price_aliases,
    }
