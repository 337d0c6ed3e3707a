"""Real model outputs, a few dozen of each source, read from the development data by the test:
fails if parsing what models write regresses. Thresholds sit well below the benchmark's figures
(benchmarks/verifier.py), so they catch a regression, not a rounding difference."""

from __future__ import annotations

import pytest

from slmflow.core.settings import VerifierSettings
from tests.support.verification_data import data_dir
from verification import sources as S
from verification.verifier import Verifier

DEFAULT = Verifier.configured(VerifierSettings())


def rates(rows: list[S.Labelled]) -> tuple[float, float]:
    """(share of correct answers accepted, share of wrong answers caught)."""
    verdicts = [DEFAULT.verify(r.item.request()).accept for r in rows]
    right = [v for v, r in zip(verdicts, rows) if r.label]
    wrong = [not v for v, r in zip(verdicts, rows) if not r.label]
    return sum(right) / max(len(right), 1), sum(wrong) / max(len(wrong), 1)


def test_bbm_arithmetic_traces_are_read_step_by_step() -> None:
    rows = list(S.bbm(data_dir(), "multistep_arithmetic"))[:80]
    agreed = [r for r in rows if r.label == 0 or r.meta["answer_right"]]  # people and the key agree
    accepted, caught = rates(agreed)
    assert accepted >= 0.9 and caught >= 0.9


def test_bbm_arithmetic_reasons_name_the_false_link() -> None:
    row = next(r for r in S.bbm(data_dir(), "multistep_arithmetic") if r.item.id == "bbm-multistep_arithmetic-1")
    reasons = DEFAULT.verify(row.item.request()).reasons
    assert any("(-6 + 5 - 72)" in r and "-76" in r for r in reasons)
    assert any(r.startswith("expected_value:") and "88" in r for r in reasons)


@pytest.mark.parametrize(
    "trace,line,link",
    [
        (104, 3, "(8 + -3)"),  # rewritten as (8 + 3)
        (147, 5, "(-2 + 1)"),  # (-3) + (1 + 0) is -2; the 1 is added twice
        (283, 6, "16 - (-32)"),  # -4 - -36 is 32
    ],
)
def test_bbm_traces_people_marked_mistake_free_are_rejected_at_their_false_line(
    trace: int, line: int, link: str
) -> None:
    row = next(r for r in S.bbm(data_dir(), "multistep_arithmetic") if r.item.id == f"bbm-multistep_arithmetic-{trace}")
    assert row.label == 1 and not row.meta["answer_right"]
    verdict = DEFAULT.verify(row.item.request())
    arithmetic = next(c for c in verdict.checks if c.name == "arithmetic")
    assert not verdict.accept and arithmetic.reason.startswith(f"line {line}:") and link in arithmetic.reason


@pytest.mark.parametrize("task", ["word_sorting", "dyck_languages"])
def test_bbm_sorting_and_brackets_are_decided_exactly(task: str) -> None:
    rows = [r for r in S.bbm(data_dir(), task)][:120]
    agreed = [r for r in rows if r.label == 0 or r.meta["answer_right"]]
    accepted, caught = rates(agreed)
    assert accepted >= 0.9 and caught >= 0.9


def test_bbm_tasks_no_check_decides_are_not_accepted() -> None:
    for task in ("logical_deduction", "tracking_shuffled_objects"):
        row = next(iter(S.bbm(data_dir(), task)))
        verdict = DEFAULT.verify(row.item.request())
        assert not verdict.accept and any(r.startswith("decidable:") for r in verdict.reasons)


def test_gsm8k_answers_of_six_models_are_parsed() -> None:
    rows = [r for r in S.gsm8k_answers(data_dir()) if r.label][:240]
    accepted, _ = rates(rows)
    assert accepted >= 0.93  # right answers, in every layout the six models use


def test_pubmedqa_conclusions_written_by_the_authors_are_accepted() -> None:
    accepted, _ = rates(list(S.pubmedqa(data_dir(), half=1))[:60])
    assert accepted >= 0.85


def test_a_conclusion_against_another_abstract_is_paired_within_its_half() -> None:
    own = list(S.pubmedqa(data_dir(), half=1))
    other = list(S.pubmedqa_other_abstract(data_dir(), half=1))
    assert len(other) == len(own) and all(o.label == 0 for o in other)
    assert [o.group for o in other] == [r.item.id for r in own]  # a fold keeps both pairings together
    assert [o.item.answer for o in other] == [r.item.answer for r in own]
    assert [o.item.evidence for o in other] == [r.item.evidence for r in own[1:] + own[:1]]


def test_begin_held_out_responses() -> None:
    rows = list(S.begin(data_dir(), "test_wow"))[:300]
    accepted, caught = rates(rows)
    assert accepted >= 0.75 and caught >= 0.55 and (accepted + caught) / 2 >= 0.72


def test_pubmedqa_conclusions_against_another_abstract_are_caught() -> None:
    _, caught = rates(list(S.pubmedqa_other_abstract(data_dir(), half=1))[:60])
    assert caught >= 0.85
