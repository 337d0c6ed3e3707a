"""The jobs slmflow ships (`deployments/<folder>/job.yaml`), found by their spec's name wherever slmflow
is installed: from a checkout, an editable install or a wheel (package data)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml


def shipped_jobs() -> dict[str, Path]:
    """Job name (the spec's `name`) -> its spec file."""
    root = Path(str(resources.files("deployments")))
    jobs = {}
    for spec in sorted(root.glob("*/job.yaml")):
        raw = yaml.safe_load(spec.read_text(encoding="utf-8"))
        if isinstance(raw, dict) and isinstance(raw.get("name"), str):
            jobs[raw["name"]] = spec
    return jobs


def resolve_spec(spec: str | Path) -> Path:
    """A spec file, or the name of a shipped job. A path that exists wins over a job of the same name."""
    path = Path(spec)
    if path.exists() or path.suffix in (".yaml", ".yml") or len(path.parts) > 1:
        return path
    jobs = shipped_jobs()
    if str(spec) in jobs:
        return jobs[str(spec)]
    return path  # load_job reports it missing, naming the shipped jobs
