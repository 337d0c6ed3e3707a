"""Train the learned P(correct) of free-text answers from real, human-labelled outputs
(`verification.sources.training_set`, plus `--from-history` escalation labels).

Gradient-boosted trees on every training example; the isotonic map to P(correct) and the
acceptance threshold come from out-of-fold scores (five folds by question), so neither is fitted
on scores the trees saw in training. Seeds are fixed and the data order is deterministic: the same
data gives the same weights.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from verification.features import FEATURE_NAMES, featurise
from verification.learned import TreeModel
from verification.sources import Labelled

FOLDS = 5


def train(
    examples: list[Labelled],
    out_dir: Path,
    seed: int = 0,
    n_estimators: int = 150,
    log: Callable[[str], None] = print,
) -> TreeModel | None:
    """Fit, calibrate and save the answer model; None when the data lacks right or wrong examples."""
    rows = [e for e in examples if e.item.kind == "answer"]
    if len({e.label for e in rows}) < 2:
        log("answer: skipped, the data lacks correct or wrong examples")
        return None
    x = np.asarray([featurise(e.item.request()) for e in rows], dtype=np.float64)
    y = np.asarray([e.label for e in rows])
    w = np.asarray([e.weight for e in rows], dtype=np.float64)
    folds = np.asarray([_fold(e.group) for e in rows])
    oof = np.zeros(len(rows))
    for k in range(FOLDS):
        held = folds == k
        oof[held] = _trees(x[~held], y[~held], w[~held], seed, n_estimators).decision_function(x[held])
    gbm = _trees(x, y, w, seed, n_estimators)
    iso_x, iso_y = _isotonic(oof, y, w)
    p = np.clip(np.interp(oof, iso_x, iso_y), 0.005, 0.995)
    threshold = best_balanced_threshold(p, y)
    sources: dict[str, int] = {}
    for e in rows:
        sources[e.source] = sources.get(e.source, 0) + 1
    model = TreeModel(
        kind="answer",
        features=FEATURE_NAMES["answer"],
        init=float(gbm._raw_predict_init(x[:1])[0, 0]),
        learning_rate=gbm.learning_rate,
        trees=[_export(t[0]) for t in gbm.estimators_],
        calibration_x=[round(float(v), 6) for v in iso_x],
        calibration_y=[round(float(v), 6) for v in iso_y],
        threshold=threshold,
        meta={"seed": seed, "n_estimators": n_estimators, "sources": dict(sorted(sources.items()))},
    )
    model.save(out_dir / "answer.json")
    accuracy = balanced_accuracy(y, p >= threshold)
    log(
        f"answer: {len(rows)} examples from {', '.join(sorted(sources))}; out-of-fold balanced accuracy "
        f"{accuracy:.3f} at threshold {threshold:.3f} -> {out_dir / 'answer.json'}"
    )
    return model


def _trees(x: np.ndarray, y: np.ndarray, w: np.ndarray, seed: int, n_estimators: int):
    from sklearn.ensemble import GradientBoostingClassifier

    gbm = GradientBoostingClassifier(
        n_estimators=n_estimators, max_depth=2, learning_rate=0.1, subsample=0.8, min_samples_leaf=10, random_state=seed
    )
    return gbm.fit(x, y, sample_weight=w if (w != 1).any() else None)


def _isotonic(raw: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold raw scores mapped to P(correct), weighted to an even mix of right and wrong:
    how many answers are wrong is a property of a deployment, not of the model."""
    from sklearn.isotonic import IsotonicRegression

    right = float(w[y == 1].sum()) / float(w.sum())
    balanced = np.where(y == 1, 0.5 / right, 0.5 / (1 - right)) * w
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw, y, sample_weight=balanced)
    return iso.X_thresholds_, iso.y_thresholds_


def balanced_accuracy(y: np.ndarray, accepted: np.ndarray) -> float:
    y = np.asarray(y) == 1
    accepted = np.asarray(accepted, dtype=bool)
    return float((accepted[y].mean() + (~accepted[~y]).mean()) / 2)


def best_balanced_threshold(p: np.ndarray, y: np.ndarray) -> float:
    candidates = np.unique(p)
    scores = [balanced_accuracy(y, p >= t) for t in candidates]
    return round(float(candidates[int(np.argmax(scores))]), 6)


def _fold(group: str) -> int:
    import hashlib

    return int(hashlib.sha256(group.encode()).hexdigest(), 16) % FOLDS


def _export(tree) -> dict[str, list[float]]:
    t = tree.tree_
    return {
        "f": [int(v) for v in t.feature],
        "t": [round(float(v), 6) for v in t.threshold],
        "l": [int(v) for v in t.children_left],
        "r": [int(v) for v in t.children_right],
        "v": [round(float(v), 6) for v in t.value[:, 0, 0]],
    }
