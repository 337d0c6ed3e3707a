"""Pick each kind's acceptance threshold for a target error rate among accepted answers.

Escalating costs a frontier call, accepting a wrong answer costs a wrong result: the threshold is
the lowest score at which the estimated error among accepted answers stays within the target,
so as few answers as possible are escalated.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from verification.learned import LearnedVerifier
from verification.sources import Labelled
from verification.verifier import Verifier


@dataclass
class Operating:
    kind: str
    threshold: float
    error: float  # estimated share of wrong answers among those accepted
    escalation: float  # share of answers sent to the frontier
    n: int
    feasible: bool  # False: no threshold meets the target, so everything escalates


def choose_threshold(
    scores: np.ndarray, labels: np.ndarray, target_error: float, wrong_share: float | None = None
) -> tuple[float, float, float, bool]:
    """(threshold, error among accepted, escalation rate, feasible).

    `wrong_share` reweights the data to a production share of wrong answers: labelled data has
    as many wrong answers as it happens to have, and both error and escalation depend on it."""
    order = np.argsort(-scores, kind="stable")
    s, wrong = scores[order], (labels[order] == 0).astype(float)
    weight = np.ones_like(s)
    observed = wrong.mean() if len(s) else 0.0
    if wrong_share is not None and 0 < observed < 1:
        weight = np.where(wrong == 1, wrong_share / observed, (1 - wrong_share) / (1 - observed))
    accepted = np.cumsum(weight)
    errors = np.cumsum(wrong * weight) / accepted
    # Accepting the top k is only possible if no item scoring the same as the k-th is left out.
    cut = np.r_[s[1:] < s[:-1], True]
    ok = np.flatnonzero(cut & (errors <= target_error))
    if not len(ok):
        return float(np.nextafter(s[0], np.inf)) if len(s) else 1.0, 0.0, 1.0, False
    k = int(ok[-1])
    return float(s[k]), float(errors[k]), float(1 - accepted[k] / accepted[-1]), True


def calibrate(
    examples: list[Labelled],
    target_error: float,
    learned: LearnedVerifier,
    out_dir: Path | None = None,
    wrong_share: float | None = None,
) -> list[Operating]:
    """Set thresholds from labelled examples the model was not trained on; with `out_dir`, the
    calibrated models are written there (the models read stay as they were)."""
    verifier = Verifier(learned=learned)
    out = []
    for kind, model in learned.models.items():
        rows = [e for e in examples if e.item.kind == kind]
        if not rows:
            continue
        scores = np.asarray([verifier.verify(e.item.request()).score for e in rows])
        labels = np.asarray([e.label for e in rows])
        threshold, error, escalation, feasible = choose_threshold(scores, labels, target_error, wrong_share)
        model.threshold = threshold
        model.meta["calibrated"] = {
            "target_error": target_error,
            "wrong_share": wrong_share,
            "error": round(error, 4),
            "escalation": round(escalation, 4),
            "n": len(rows),
        }
        if out_dir is not None:
            model.save(out_dir / f"{kind}.json")
        out.append(Operating(kind, threshold, error, escalation, len(rows), feasible))
    return out
