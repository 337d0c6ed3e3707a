"""How far math answers can be judged from weaker models' alternatives: the shipped rule against
learned combiners of every signal the verifier measures, on GSM8K answers of real models.

    python benchmarks/verifier_alternatives.py [--data DIR]

Items: Mixtral's and the four GPT-3 answers to 300 GSM8K test questions, each with the other GPT-3
answers as alternatives (never GPT-4's, which is the cascade's frontier). Signals per answer, all
computed by `verification.math` and `verification.agreement`:

- votes: agreeing alternatives, a sound one (its own process checks pass) 1, another 0.5; how many
  agree; the largest group of alternatives that agree with each other on another number;
- the answer's own process checks, whether its final number is its last step's result, the share of
  the question's numbers it uses, its number of steps;
- partial agreement: the share of its intermediate results found among the alternatives' steps.

Combiners (logistic regression, gradient-boosted trees) are fitted five times, each time on four
fifths of the questions, and scored on the fifth: every figure below is out of fold. F1 is given
at the threshold that maximises it on those out-of-fold scores, an upper bound for any threshold
chosen in advance. The cascade escalates Mixtral's lowest-scoring answers to GPT-4.
"""

from __future__ import annotations

import argparse
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slmflow.core.settings import get_settings
from verification import math as vm
from verification import sources as S
from verification.agreement import WEAK, same_number
from verification.verifier import Verifier

FOLDS = 5
SIGNALS = [
    "votes",
    "agreeing",
    "rival",
    "own_checks",
    "final_is_last",
    "question_numbers_used",
    "steps",
    "partial_agreement",
    "alternatives_sound",
]


@dataclass
class Item:
    x: list[float]
    verdict: float  # the default verifier's score
    right: bool
    small: bool  # Mixtral's answer (the cascade's small model)
    frontier_right: bool
    group: str


def signals(question: str, answer: str, alternatives: list[str]) -> list[float]:
    own = vm.analyse(question, answer)
    alts = [vm.analyse(question, a) for a in alternatives]
    sound = [all(c.passed for c in vm.checks_from(a)) for a in alts]
    agrees = [own.final is not None and a.final is not None and same_number(a.final, own.final) for a in alts]
    others = [a.final for a, agree in zip(alts, agrees) if not agree and a.final is not None]
    rival = max((sum(same_number(o, p) for p in others) for o in others), default=0)
    theirs = {round(s.claimed, 4) for a in alts for s in a.steps}
    mine = [round(s.claimed, 4) for s in own.steps]
    return [
        sum(1.0 if s else WEAK for s, agree in zip(sound, agrees) if agree),
        float(sum(agrees)),
        float(rival),
        float(all(c.passed for c in vm.checks_from(own))),
        float(own.final_is_last_result),
        own.question_numbers_used,
        float(len(own.steps)),
        sum(m in theirs for m in mine) / len(mine) if mine else 0.0,
        float(sum(sound)),
    ]


def items(data: Path) -> list[Item]:
    verifier = Verifier.configured(get_settings().verifier)
    out = []
    for r in S.gsm8k_answers(data, (S.SMALL, *S.WEAKER), alternatives=True):
        x = signals(r.item.question, r.item.answer, r.item.alternatives)
        score = verifier.verify(r.item.request()).score
        out.append(Item(x, score, bool(r.label), r.meta["model"] == S.SMALL, bool(r.meta["frontier_correct"]), r.group))
    return out


def final_numbers_read(data: Path) -> tuple[int, int]:
    """(pairs of answers to one question that both state a final number, pairs the key marks both
    right that the comparison reads as different): how often reading or normalising final
    numbers, not the answers, is at fault."""
    answers: dict[str, list[tuple[float, bool]]] = {}
    for r in S.gsm8k_answers(data):
        final = vm.analyse(r.item.question, r.item.answer).final
        if final is not None:
            answers.setdefault(r.group, []).append((final, bool(r.label)))
    pairs = misread = 0
    for finals in answers.values():
        for i, (a, right_a) in enumerate(finals):
            for b, right_b in finals[i + 1 :]:
                pairs += 1
                misread += right_a and right_b and not (same_number(a, b) or same_number(b, a))
    return pairs, misread


def out_of_fold(x: np.ndarray, y: np.ndarray, groups: list[str], make) -> np.ndarray:
    folds = np.asarray([int(hashlib.sha256(g.encode()).hexdigest(), 16) % FOLDS for g in groups])
    p = np.zeros(len(y))
    for k in range(FOLDS):
        held = folds == k
        p[held] = make().fit(x[~held], y[~held]).predict_proba(x[held])[:, 1]
    return p


def best_f1(right: np.ndarray, score: np.ndarray) -> tuple[float, float, float]:
    """(F1, precision, recall) at flagging wrong answers, at the best threshold on these scores."""
    best = (0.0, 0.0, 0.0)
    for t in np.unique(score):
        flagged = score <= t
        tp = float((flagged & ~right).sum())
        if not tp:
            continue
        p, r = tp / flagged.sum(), tp / (~right).sum()
        best = max(best, (2 * p * r / (p + r), p, r))
    return best


def cascade(right: np.ndarray, frontier: np.ndarray, score: np.ndarray, share: float) -> float:
    escalate = np.zeros(len(right), dtype=bool)
    escalate[np.argsort(score, kind="stable")[: round(share * len(right))]] = True
    return float(np.where(escalate, frontier, right).mean())


def main() -> None:
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="default: settings data_dir (../shared/data)")
    args = parser.parse_args()
    rows = items(args.data or get_settings().data_dir)
    x = np.asarray([r.x for r in rows])
    right = np.asarray([r.right for r in rows])
    small = np.asarray([r.small for r in rows])
    frontier = np.asarray([r.frontier_right for r in rows])
    groups = [r.group for r in rows]
    votes = x[:, SIGNALS.index("votes")]
    scores = {
        "naive: one alternative agrees (no checks)": (x[:, SIGNALS.index("agreeing")] >= 1).astype(float),
        "votes (the agreement check alone)": votes,
        "the default verifier's score (agreement and process checks)": np.asarray([r.verdict for r in rows]),
        "logistic regression over all signals, out of fold": out_of_fold(
            x, right, groups, lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        ),
        "gradient-boosted trees over all signals, out of fold": out_of_fold(
            x,
            right,
            groups,
            lambda: GradientBoostingClassifier(n_estimators=150, max_depth=2, subsample=0.8, random_state=0),
        ),
    }
    print(f"GSM8K, Mixtral and GPT-3 answers, 3-4 GPT-3 alternatives each: {len(rows)}, {int(right.sum())} right")
    print("| score | AUROC | best F1 (flag wrong) | precision | recall | Mixtral -> GPT-4 at 35% escalated |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, s in scores.items():
        f1, p, r = best_f1(right, s)
        at35 = cascade(right[small], frontier[small], s[small], 0.35)
        print(f"| {name} | {roc_auc_score(right, s):.3f} | {f1:.3f} | {p:.3f} | {r:.3f} | {at35:.3f} |")
    lonely = small & (x[:, SIGNALS.index("agreeing")] == 0)
    print(
        f"\nMixtral's answers no alternative agrees with: {int(lonely.sum())}, of which right "
        f"{right[lonely].mean():.1%}"
    )
    pairs, misread = final_numbers_read(args.data or get_settings().data_dir)
    print(
        f"pairs of readable final numbers to one question: {pairs}; both right by the key, read as different: {misread}"
    )
    r_small, f_small = right[small], frontier[small]
    print(
        f"\nGPT-4 alone {f_small.mean():.3f}; an oracle escalating exactly Mixtral's wrong answers: "
        f"{np.where(r_small, r_small, f_small).mean():.3f} at {(~r_small).mean():.1%} escalated"
    )


if __name__ == "__main__":
    main()
