"""Where the verifier's weights live; import-light, for CLI option defaults. The evaluation data's
path is `settings.data_dir`, defined once in `slmflow.core.settings`."""

from __future__ import annotations

from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
