"""Where the verifier's data and weights live; import-light, for CLI option defaults."""

from __future__ import annotations

from pathlib import Path

# The development data sits beside the repository (../shared/data), never inside it.
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
