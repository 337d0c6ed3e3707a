"""Routing metrics over graded items: the three fixed policies (small only, frontier only, the
verified cascade), and the cascade over every verifier-score threshold, summarised the way
RouteLLM summarises a router.

PGR (performance gap recovered) at an escalation rate is (acc - small_acc) /
(frontier_acc - small_acc). APGR is the area under PGR against escalation rate on [0, 1]:
routing at random scores 0.5, a router that escalates exactly the small model's mistakes first
scores close to 1. The escalation rate needed for 50% / 80% of the gap is where the curve first
reaches that PGR.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from pydantic import BaseModel

PGR_TARGETS = (0.5, 0.8)


@dataclass(frozen=True)
class Row:
    """One item as the metrics see it."""

    small_correct: bool
    frontier_correct: bool
    small_usd: float
    frontier_usd: float
    small_score: float = 0.0  # graded credit (token F1 ...); equals correctness elsewhere
    frontier_score: float = 0.0
    accept: bool | None = None  # the verifier's decision on the small answer
    score: float | None = None  # the verifier's score for it


class Policy(BaseModel):
    name: str
    accuracy: float
    score: float
    escalation_rate: float
    usd_per_1k: float


class CurvePoint(BaseModel):
    # Escalate when the verifier score < threshold; None stands for "above every score"
    # (escalate everything), which JSON cannot write as infinity.
    threshold: float | None
    escalation_rate: float
    accuracy: float
    score: float
    usd_per_1k: float
    pgr: float | None = None


class CurveSummary(BaseModel):
    apgr: float | None
    escalation_for_pgr: dict[str, float | None]  # "50%" -> escalation rate, None: never reached
    note: str = ""


def policy(name: str, rows: Sequence[Row], escalate: Sequence[bool]) -> Policy:
    """Accuracy and cost when the frontier answers exactly the escalated items. The small model
    always runs first, so an escalated item costs both calls."""
    n = len(rows)
    pairs = list(zip(rows, escalate, strict=True))
    correct = sum(r.frontier_correct if e else r.small_correct for r, e in pairs)
    score = sum(r.frontier_score if e else r.small_score for r, e in pairs)
    usd = sum(r.small_usd + (r.frontier_usd if e else 0.0) for r, e in pairs)
    return Policy(
        name=name, accuracy=correct / n, score=score / n, escalation_rate=sum(escalate) / n, usd_per_1k=1000 * usd / n
    )


def small_only(rows: Sequence[Row]) -> Policy:
    return policy("small only", rows, [False] * len(rows))


def frontier_only(rows: Sequence[Row]) -> Policy:
    n = len(rows)
    return Policy(
        name="frontier only",
        accuracy=sum(r.frontier_correct for r in rows) / n,
        score=sum(r.frontier_score for r in rows) / n,
        escalation_rate=1.0,
        usd_per_1k=1000 * sum(r.frontier_usd for r in rows) / n,
    )


def verified_cascade(rows: Sequence[Row]) -> Policy:
    return policy("verified cascade", rows, [not r.accept for r in rows])


def threshold_curve(rows: Sequence[Row]) -> list[CurvePoint]:
    """The cascade at every distinct verifier score, from escalating nothing (threshold = the
    lowest score) to escalating everything. Between two points the curve is a straight line: the
    expected result of breaking ties among equal scores at random."""
    scores = [r.score if r.score is not None else 0.0 for r in rows]
    thresholds: list[float] = [*sorted(set(scores)), math.inf]
    s_acc = sum(r.small_correct for r in rows) / len(rows)
    f_acc = sum(r.frontier_correct for r in rows) / len(rows)
    points = []
    for t in thresholds:
        p = policy("threshold", rows, [s < t for s in scores])
        points.append(
            CurvePoint(
                threshold=None if math.isinf(t) else t,
                escalation_rate=p.escalation_rate,
                accuracy=p.accuracy,
                score=p.score,
                usd_per_1k=p.usd_per_1k,
                pgr=pgr(p.accuracy, s_acc, f_acc),
            )
        )
    return points


def pgr(accuracy: float, small_acc: float, frontier_acc: float) -> float | None:
    gap = frontier_acc - small_acc
    return None if gap <= 0 else (accuracy - small_acc) / gap


def summarize_curve(points: Sequence[CurvePoint], targets: Sequence[float] = PGR_TARGETS) -> CurveSummary:
    if any(p.pgr is None for p in points):
        return CurveSummary(
            apgr=None,
            escalation_for_pgr={_pct(t): None for t in targets},
            note="the frontier is not more accurate than the small model here, so there is no gap to recover",
        )
    return CurveSummary(
        apgr=round(apgr(points), 4), escalation_for_pgr={_pct(t): _round(escalation_for(points, t)) for t in targets}
    )


def apgr(points: Sequence[CurvePoint]) -> float:
    """Trapezoid area under PGR over escalation rate."""
    area = 0.0
    for a, b in pairwise(points):
        area += (b.escalation_rate - a.escalation_rate) * ((a.pgr or 0.0) + (b.pgr or 0.0)) / 2
    return area


def escalation_for(points: Sequence[CurvePoint], target: float) -> float | None:
    """The lowest escalation rate at which the (piecewise-linear) curve reaches `target` PGR."""
    for a, b in pairwise(points):
        pa, pb = a.pgr or 0.0, b.pgr or 0.0
        if pa >= target:
            return a.escalation_rate
        if pb >= target:
            return a.escalation_rate + (target - pa) / (pb - pa) * (b.escalation_rate - a.escalation_rate)
    return points[-1].escalation_rate if points and (points[-1].pgr or 0.0) >= target else None


def _pct(target: float) -> str:
    return f"{target:.0%}"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
