"""Benchmark the verifier on held-out dev data: rule checks alone against the learned verifier.

    python benchmarks/verifier.py [--data ../shared/data] [--seed 0] [--by-perturbation] [--wrong-share 0.3]

Dev data is the `dev` split of `verification.data` (items never seen in training or calibration):
GSM8K solutions, BFCL non-live calls (simple, multiple, parallel, parallel-multiple, irrelevance)
and PubMedQA/HotpotQA grounding pairs. Figures are for *flagging wrong answers*: precision and
recall of rejection, F1, AUROC of 1 - score, and wall-clock ms per item on this CPU.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path

from verification.data import Example, generate
from verification.features import LEARNED_KINDS
from verification.learned import LearnedVerifier
from verification.paths import DEFAULT_DATA, WEIGHTS_DIR
from verification.train import flag_metrics
from verification.verifier import Verifier


def run(examples: list[Example], verifier: Verifier) -> tuple[list[bool], list[float], float]:
    accepted, scores = [], []
    start = time.perf_counter()
    for e in examples:
        v = verifier.verify(e.request)
        accepted.append(v.accept)
        scores.append(v.score)
    return accepted, scores, 1000 * (time.perf_counter() - start) / max(len(examples), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--weights", type=Path, default=WEIGHTS_DIR)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--by-perturbation", action="store_true", help="also print recall per error type")
    parser.add_argument(
        "--wrong-share",
        type=float,
        default=None,
        help="reweight precision/F1 to this share of wrong answers (default: as generated)",
    )
    args = parser.parse_args()

    dev = [e for e in generate(args.data, seed=args.seed) if e.split == "dev"]
    verifiers = {"rules": Verifier(), "learned": Verifier(learned=LearnedVerifier.load(args.weights))}
    print(
        f"{'kind':<10} {'verifier':<8} {'items':>6} {'wrong':>6} {'P':>6} {'R':>6} {'F1':>6} "
        f"{'AUROC':>6} {'ms/item':>8}"
    )
    per_type: dict[tuple[str, str, str], list[bool]] = defaultdict(list)
    for kind in LEARNED_KINDS:
        rows = [e for e in dev if e.request.kind == kind]
        if not rows:
            continue
        for name, verifier in verifiers.items():
            run(rows[:50], verifier)  # warm caches and lazy imports before timing
            accepted, scores, ms = run(rows, verifier)
            m = flag_metrics([e.label for e in rows], accepted, scores, args.wrong_share)
            print(
                f"{kind:<10} {name:<8} {m.n:>6} {m.wrong:>6} {m.precision:>6.3f} {m.recall:>6.3f} "
                f"{m.f1:>6.3f} {m.auroc:>6.3f} {ms:>8.2f}"
            )
            for e, a in zip(rows, accepted):
                per_type[(kind, e.perturbation, name)].append(a == bool(e.label))
    if args.by_perturbation:
        print(f"\n{'kind':<10} {'example type':<20} {'items':>6} {'rules':>7} {'learned':>8}   (share judged right)")
        for kind, pert in sorted({(k, p) for k, p, _ in per_type}):
            r, learned = per_type[(kind, pert, "rules")], per_type[(kind, pert, "learned")]
            print(f"{kind:<10} {pert:<20} {len(r):>6} {sum(r) / len(r):>7.3f} {sum(learned) / len(learned):>8.3f}")


if __name__ == "__main__":
    main()
