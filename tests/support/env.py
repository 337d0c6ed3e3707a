"""Environments for the child processes tests start."""

from __future__ import annotations

import os


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without Ray, Prefect, Qdrant or slmflow settings, plus `extra`: a child
    configured only by what the test passes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "PREFECT_", "SLMFLOW_", "QDRANT_"))}
    env.update({"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", **extra})
    return env
