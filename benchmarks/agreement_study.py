"""Would agreement with an independent answer help the learned verifier? A simulation.

No labelled set of real independent answers exists yet (it needs a second model run over the dev
data), so the independent answer is simulated per dev item from assumptions about the second
solver: how often it gets the item right when the answer under test is right (`q_right`) and when
it is wrong (`q_wrong`: lower, as hard items trip both models), how often a wrong second answer
equals the wrong answer under test (`same_wrong`), and how often it is inconclusive (`fail`).

For each scenario it compares, on the dev split of the generated data:
- the committed learned model alone;
- the same model with a disagreement as a veto (what `Verifier(independent=...)` does);
- a model retrained with `independent_checked` and `independent_agree` as two more features
  (trained on a simulation of the same scenario);
- that retrained model deployed with a weaker second solver than it was trained with.

Run: `python benchmarks/agreement_study.py [--data DIR] [--limit N]`. Deterministic.
"""

from __future__ import annotations

import argparse
import hashlib
import random
from dataclasses import dataclass

import numpy as np

from verification.data import Example, generate
from verification.features import FEATURE_NAMES, featurise
from verification.learned import LearnedVerifier
from verification.paths import DEFAULT_DATA
from verification.train import fit, flag_metrics

KINDS = ("math", "tool_call")  # learned kinds that have an independent answer to compare
EXTRA = ["independent_checked", "independent_agree"]


@dataclass(frozen=True)
class Scenario:
    name: str
    q_right: float  # P(second answer right | answer under test right)
    q_wrong: float  # P(second answer right | answer under test wrong)
    same_wrong: float  # P(second answer equals the wrong one | both wrong)
    fail: float  # P(no usable second answer)


SCENARIOS = [
    Scenario("strong second solver", 0.90, 0.80, 0.10, 0.05),
    Scenario("mid (small model PoT)", 0.75, 0.55, 0.15, 0.10),
    Scenario("weak (135M-class)", 0.30, 0.20, 0.10, 0.30),
]


def simulate(examples: list[Example], s: Scenario, salt: str) -> np.ndarray:
    """(checked, agree) per example, from a generator seeded by the example, so reruns agree."""
    out = []
    for i, e in enumerate(examples):
        rng = random.Random(hashlib.sha256(f"{salt}:{s.name}:{e.group}:{e.perturbation}:{i}".encode()).digest())
        if rng.random() < s.fail:
            out.append((0.0, 0.5))
            continue
        if e.label == 1:
            agree = rng.random() < s.q_right
        else:
            agree = rng.random() >= s.q_wrong and rng.random() < s.same_wrong
        out.append((1.0, float(agree)))
    return np.asarray(out)


def study(data=DEFAULT_DATA, limit: int | None = None, log=print) -> dict:
    examples = generate(data, limit=limit)
    learned = LearnedVerifier.load()
    results: dict = {}
    for kind in KINDS:
        rows = [e for e in examples if e.request.kind == kind]
        parts = {s: [e for e in rows if e.split == s] for s in ("train", "calib", "dev")}
        x = {s: np.asarray([featurise(e.request) for e in p], dtype=np.float64) for s, p in parts.items()}
        y = {s: np.asarray([e.label for e in p]) for s, p in parts.items()}
        w = {s: np.ones(len(p)) for s, p in parts.items()}
        base = learned.models[kind]
        p0 = np.asarray([base.probability(list(r)) for r in x["dev"]])
        ydev = y["dev"]

        def row(label: str, accepted: np.ndarray, scores: np.ndarray, ydev=ydev, kind=kind) -> dict:
            m, m30 = flag_metrics(ydev, accepted, scores), flag_metrics(ydev, accepted, scores, wrong_share=0.3)
            false_flags = float((~accepted[ydev == 1]).mean())
            log(
                f"{kind:<9} {label:<44} F1 {m.f1:.3f}  F1@30% {m30.f1:.3f}  AUROC {m.auroc:.3f}  "
                f"right answers rejected {false_flags:.1%}"
            )
            return {"f1": m.f1, "f1_30": m30.f1, "auroc": m.auroc, "false_flags": false_flags}

        results[kind] = {"alone": row("learned alone", p0 >= base.threshold, p0)}
        for s in SCENARIOS:
            sims = {split: simulate(p, s, split) for split, p in parts.items()}
            checked, agree = sims["dev"][:, 0] == 1, sims["dev"][:, 1]
            veto = checked & (agree == 0)
            model = fit(kind, FEATURE_NAMES[kind] + EXTRA, {k: np.hstack([x[k], sims[k]]) for k in x}, y, w)
            pf = np.asarray([model.probability(list(r)) for r in np.hstack([x["dev"], sims["dev"]])])
            weak = simulate(parts["dev"], SCENARIOS[-1], "dev")
            pm = np.asarray([model.probability(list(r)) for r in np.hstack([x["dev"], weak])])
            results[kind][s.name] = {
                "veto": row(f"{s.name}: veto", (p0 >= base.threshold) & ~veto, np.where(veto, 0.0, p0)),
                "feature": row(f"{s.name}: feature", pf >= model.threshold, pf),
                "feature_on_weak": row(f"{s.name}: feature, weak solver at run time", pm >= model.threshold, pm),
            }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    from pathlib import Path

    study(Path(args.data), args.limit)


if __name__ == "__main__":
    main()
