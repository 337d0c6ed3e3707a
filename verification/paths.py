"""Where the verifier's weights live; import-light, for CLI option defaults. Two places: the
weights shipped in the package (read-only once installed from a wheel) and the user's folder,
`settings.verifier.weights_dir` (<cache_dir>/verifier unless set), where `slmflow verifier train`
and `calibrate` write. The evaluation data's path is `settings.data_dir`, defined once in
`slmflow.core.settings`."""

from __future__ import annotations

from pathlib import Path

PACKAGED_WEIGHTS = Path(__file__).resolve().parent / "weights"


def weights_file(name: str, user_dir: Path | None) -> Path | None:
    """The user's copy of a weights file when there is one, else the packaged one; None when
    neither exists."""
    for directory in (user_dir, PACKAGED_WEIGHTS):
        if directory is not None and (directory / name).is_file():
            return directory / name
    return None
