"""The learned verifier at inference time: gradient-boosted trees over the check features, read
from plain JSON and evaluated in NumPy, then mapped to a calibrated P(correct).

JSON rather than a pickle: it loads in any scikit-learn version (or none), it cannot execute
code, and a diff of it is readable. Training lives in `verification.train`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from slmflow.core.records import VerifyRequest
from verification.features import FEATURE_NAMES, featurise
from verification.paths import weights_file


@dataclass
class TreeModel:
    kind: str
    features: list[str]
    init: float
    learning_rate: float
    trees: list[dict[str, list[float]]]  # f: feature, t: threshold, l/r: children, v: leaf value
    calibration_x: list[float]
    calibration_y: list[float]
    threshold: float
    meta: dict[str, Any]

    @classmethod
    def load(cls, path: Path) -> TreeModel:
        d = json.loads(path.read_text())
        if d["features"] != FEATURE_NAMES[d["kind"]]:
            raise ValueError(f"{path} was trained on other features; retrain with `slmflow verifier train`")
        return cls(
            kind=d["kind"],
            features=d["features"],
            init=d["init"],
            learning_rate=d["learning_rate"],
            trees=d["trees"],
            calibration_x=d["calibration"]["x"],
            calibration_y=d["calibration"]["y"],
            threshold=d["threshold"],
            meta=d.get("meta", {}),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "features": self.features,
            "init": self.init,
            "learning_rate": self.learning_rate,
            "trees": self.trees,
            "calibration": {"x": self.calibration_x, "y": self.calibration_y},
            "threshold": self.threshold,
            "meta": self.meta,
        }

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), separators=(",", ":")) + "\n")

    def raw(self, x: list[float]) -> float:
        total = 0.0
        for tree in self.trees:
            node = 0
            left, right, feature, threshold = tree["l"], tree["r"], tree["f"], tree["t"]
            while left[node] != -1:
                node = int(left[node] if x[int(feature[node])] <= threshold[node] else right[node])
            total += tree["v"][node]
        return self.init + self.learning_rate * total

    def probability(self, x: list[float]) -> float:
        return calibrate(self.raw(x), self.calibration_x, self.calibration_y)


def calibrate(raw: float, xs: list[float], ys: list[float]) -> float:
    """Isotonic map from the ensemble's raw score to P(correct), clipped away from 0 and 1:
    held-out data cannot justify certainty."""
    return float(np.clip(np.interp(raw, xs, ys), 0.005, 0.995))


class LearnedVerifier:
    def __init__(self, models: dict[str, TreeModel], files: dict[str, Path] | None = None):
        self.models = models
        self.files = files or {}  # where each kind's model was read from

    @classmethod
    def load(cls, user_dir: Path | None = None) -> LearnedVerifier:
        """Each kind's model from `user_dir` when it holds one, else the one shipped in the package."""
        files = {kind: path for kind in FEATURE_NAMES if (path := weights_file(f"{kind}.json", user_dir)) is not None}
        return cls({kind: TreeModel.load(path) for kind, path in files.items()}, files)

    def covers(self, kind: str) -> bool:
        return kind in self.models

    def predict(self, req: VerifyRequest) -> tuple[float, float]:
        """(P(correct), acceptance threshold) for a kind this verifier covers."""
        model = self.models[req.kind]
        return model.probability(featurise(req)), model.threshold
