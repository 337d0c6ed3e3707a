"""Train the learned verifier from generated examples (see `verification.data`).

Per kind: gradient-boosted trees on the train split, isotonic calibration on the calib split,
figures on the dev split. Seeds are fixed and the data order is deterministic, so the same data
gives the same weights.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from verification.data import Example
from verification.features import FEATURE_NAMES, LEARNED_KINDS, featurise
from verification.learned import TreeModel
from verification.paths import WEIGHTS_DIR


@dataclass
class Scores:
    precision: float  # of the answers flagged wrong, the share that were wrong
    recall: float  # of the wrong answers, the share flagged
    f1: float
    auroc: float
    n: int
    wrong: int


def flag_metrics(
    labels: Sequence[int], accepted: Sequence[bool], scores: Sequence[float], wrong_share: float | None = None
) -> Scores:
    """Figures for *flagging wrong answers*: the positive class is label 0. Precision and F1
    depend on how many answers are wrong; `wrong_share` reweights the data to that share."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(labels) == 0
    flagged = ~np.asarray(accepted, dtype=bool)
    w = np.ones(len(y))
    if wrong_share is not None and 0 < y.mean() < 1:
        w = np.where(y, wrong_share / y.mean(), (1 - wrong_share) / (1 - y.mean()))
    tp = float(w[flagged & y].sum())
    precision = tp / w[flagged].sum() if flagged.any() else 0.0
    recall = tp / w[y].sum() if y.any() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    auroc = float(roc_auc_score(y, -np.asarray(scores))) if 0 < y.sum() < len(y) else float("nan")
    return Scores(precision, recall, f1, auroc, len(y), int(y.sum()))


def train(
    examples: list[Example],
    out_dir: Path = WEIGHTS_DIR,
    seed: int = 0,
    n_estimators: int = 200,
    log: Callable[[str], None] = print,
) -> dict[str, Scores]:
    """Fit, calibrate and save one model per learned kind; dev figures per kind.

    Examples carry a sample weight (escalation labels from `--from-history` count more than
    generated ones); it weights both the trees and the calibration. With every weight 1 the
    result is exactly the unweighted fit."""
    results = {}
    for kind in LEARNED_KINDS:
        rows = [e for e in examples if e.request.kind == kind]
        parts = {s: [e for e in rows if e.split == s] for s in ("train", "calib", "dev")}
        if any(len({e.label for e in p}) < 2 for p in parts.values()):
            log(f"{kind}: skipped, a split lacks correct or wrong examples")
            continue
        x = {s: np.asarray([featurise(e.request) for e in p], dtype=np.float64) for s, p in parts.items()}
        y = {s: np.asarray([e.label for e in p]) for s, p in parts.items()}
        w = {s: np.asarray([e.weight for e in p], dtype=np.float64) for s, p in parts.items()}
        history = {s: sum(e.perturbation == "history" for e in p) for s, p in parts.items()}
        meta = {"seed": seed, "n_estimators": n_estimators, "examples": {s: len(p) for s, p in parts.items()}}
        if any(history.values()):
            meta["history"] = {**history, "weight": sorted({e.weight for e in rows if e.perturbation == "history"})}
        model = fit(kind, FEATURE_NAMES[kind], x, y, w, seed=seed, n_estimators=n_estimators, meta=meta)
        model.save(out_dir / f"{kind}.json")
        p = np.asarray([model.probability(list(r)) for r in x["dev"]])
        results[kind] = flag_metrics(y["dev"], p >= model.threshold, p)
        r = results[kind]
        log(
            f"{kind}: dev F1 {r.f1:.3f} (P {r.precision:.3f}, R {r.recall:.3f}), AUROC {r.auroc:.3f}, "
            f"{r.n} items -> {out_dir / f'{kind}.json'}"
        )
        if any(history.values()):
            mask = np.asarray([e.perturbation == "history" for e in parts["dev"]])
            hist = _history_figures(y["dev"][mask], p[mask], model.threshold)
            log(
                f"{kind}: history labels train/calib/dev {history['train']}/{history['calib']}/{history['dev']}"
                f"{'; dev ' + hist if hist else ''}"
            )
    return results


def fit(
    kind: str,
    features: list[str],
    x: dict[str, np.ndarray],
    y: dict[str, np.ndarray],
    w: dict[str, np.ndarray],
    seed: int = 0,
    n_estimators: int = 200,
    meta: dict | None = None,
) -> TreeModel:
    """Trees on the train split, an isotonic map to P(correct) and the best-F1 threshold on the
    calib split. `x`, `y` and `w` (sample weights) are keyed by split."""
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.isotonic import IsotonicRegression

    weighted = any((w[s] != 1).any() for s in w)
    gbm = GradientBoostingClassifier(
        n_estimators=n_estimators, max_depth=4, learning_rate=0.1, subsample=0.8, min_samples_leaf=10, random_state=seed
    )
    gbm.fit(x["train"], y["train"], sample_weight=w["train"] if weighted else None)
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
    # Generated data is mostly wrong answers, a mix production need not share: calibrate to an
    # even prior, and let `calibrate --wrong-share` set thresholds for the real mix.
    yc, wc = y["calib"], w["calib"]
    right = float(wc[yc == 1].sum())
    balanced = np.where(yc == 1, 0.5 / (right / wc.sum()), 0.5 / (1 - right / wc.sum())) * wc
    iso.fit(gbm.decision_function(x["calib"]), yc, sample_weight=balanced)
    calib_p = np.clip(iso.predict(gbm.decision_function(x["calib"])), 0.005, 0.995)
    return TreeModel(
        kind=kind,
        features=features,
        init=float(gbm._raw_predict_init(x["train"][:1])[0, 0]),
        learning_rate=gbm.learning_rate,
        trees=[_export(t[0]) for t in gbm.estimators_],
        calibration_x=[round(float(v), 6) for v in iso.X_thresholds_],
        calibration_y=[round(float(v), 6) for v in iso.y_thresholds_],
        threshold=best_f1_threshold(calib_p, y["calib"], wrong_share=0.5),
        meta=meta or {},
    )


def _history_figures(labels: np.ndarray, p: np.ndarray, threshold: float) -> str:
    if not len(labels):
        return ""
    accuracy = float(((p >= threshold) == (labels == 1)).mean())
    text = f"{len(labels)} items, accept/reject right for {accuracy:.0%}"
    if 0 < labels.sum() < len(labels):
        text += f", AUROC {flag_metrics(labels, p >= threshold, p).auroc:.3f}"
    return text


def best_f1_threshold(p: np.ndarray, labels: np.ndarray, wrong_share: float | None = None) -> float:
    """The acceptance threshold with the best F1 at flagging wrong answers on held-back data;
    `slmflow verifier calibrate` replaces it with one set by a target error rate."""
    candidates = np.unique(p)
    f1 = [flag_metrics(labels, p >= t, p, wrong_share).f1 for t in candidates]
    return round(float(candidates[int(np.argmax(f1))]), 6)


def _export(tree) -> dict[str, list[float]]:
    t = tree.tree_
    return {
        "f": [int(v) for v in t.feature],
        "t": [round(float(v), 6) for v in t.threshold],
        "l": [int(v) for v in t.children_left],
        "r": [int(v) for v in t.children_right],
        "v": [round(float(v), 6) for v in t.value[:, 0, 0]],
    }
