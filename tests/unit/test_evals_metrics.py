"""Routing metrics on a toy curve small enough to compute by hand."""

from __future__ import annotations

import pytest

from evals.metrics import (
    Row,
    escalation_for,
    frontier_only,
    small_only,
    summarize_curve,
    threshold_curve,
    verified_cascade,
)


def _row(score: float, small: bool, frontier: bool = True, accept: bool = True) -> Row:
    return Row(
        small_correct=small,
        frontier_correct=frontier,
        small_usd=0.001,
        frontier_usd=0.01,
        small_score=float(small),
        frontier_score=float(frontier),
        accept=accept,
        score=score,
    )


# Verifier scores and correctness. Small is right on b and d (50%), the frontier on all (100%).
TOY = [_row(0.1, False, accept=False), _row(0.4, True), _row(0.7, False), _row(0.9, True)]


def test_threshold_curve_by_hand() -> None:
    points = threshold_curve(TOY)
    # thresholds 0.1 0.4 0.7 0.9 inf escalate 0, {a}, {a,b}, {a,b,c}, all
    assert [p.escalation_rate for p in points] == [0, 0.25, 0.5, 0.75, 1]
    assert [p.accuracy for p in points] == [0.5, 0.75, 0.75, 1, 1]
    assert [p.pgr for p in points] == [0, 0.5, 0.5, 1, 1]
    assert points[-1].threshold is None
    # every item pays the small call; escalated ones add the frontier call
    assert points[2].usd_per_1k == pytest.approx(1000 * (4 * 0.001 + 2 * 0.01) / 4)


def test_apgr_and_escalation_needed_by_hand() -> None:
    summary = summarize_curve(threshold_curve(TOY))
    # trapezoids: .25*(0+.5)/2 + .25*.5 + .25*(.5+1)/2 + .25*1 = .0625+.125+.1875+.25
    assert summary.apgr == pytest.approx(0.625)
    # PGR .5 is first reached at 25%; PGR .8 between (50%, .5) and (75%, 1): .5 + .3/.5 * .25
    assert summary.escalation_for_pgr == {"50%": pytest.approx(0.25), "80%": pytest.approx(0.65)}


def test_random_like_router_scores_half() -> None:
    # One score for everything: the curve is the straight line from small to frontier.
    rows = [_row(0.5, small) for small in (True, False, True, False)]
    summary = summarize_curve(threshold_curve(rows))
    assert summary.apgr == pytest.approx(0.5)
    assert summary.escalation_for_pgr["80%"] == pytest.approx(0.8)


def test_no_gap_to_recover() -> None:
    rows = [_row(0.2, True), _row(0.8, False, frontier=False)]
    summary = summarize_curve(threshold_curve(rows))
    assert summary.apgr is None and "no gap" in summary.note
    assert summary.escalation_for_pgr == {"50%": None, "80%": None}


def test_target_never_reached() -> None:
    points = threshold_curve([_row(0.1, True), _row(0.2, False, frontier=False), _row(0.3, False)])
    assert escalation_for(points, 1.5) is None


def test_fixed_policies() -> None:
    small, frontier, cascade = small_only(TOY), frontier_only(TOY), verified_cascade(TOY)
    assert (small.accuracy, small.escalation_rate) == (0.5, 0)
    assert (frontier.accuracy, frontier.usd_per_1k) == (1, pytest.approx(10))
    # only a is rejected: accuracy 3/4, escalation 1/4, cost 4 small + 1 frontier
    assert (cascade.accuracy, cascade.escalation_rate) == (0.75, 0.25)
    assert cascade.usd_per_1k == pytest.approx(1000 * (0.004 + 0.01) / 4)
