"""Process checks for worked arithmetic."""

from __future__ import annotations

import pytest

from slmflow.core.records import VerifyRequest
from verification import math as vm
from verification.verifier import Verifier

QUESTION = (
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips "
    "in May. How many clips did Natalia sell altogether in April and May?"
)
GOLD = (
    "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
    "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72"
)


def verdict(answer: str, question: str = QUESTION, finish_reason: str | None = None):
    return Verifier().verify(
        VerifyRequest(kind="math", source=question, text=answer, output=answer, finish_reason=finish_reason)
    )


def failed(answer: str, question: str = QUESTION) -> dict[str, str]:
    return {c.name: c.reason for c in verdict(answer, question).checks if not c.passed}


@pytest.mark.parametrize(
    "answer",
    [
        GOLD,
        "Natalia sold 48 / 2 = 24 clips in May.\nShe sold 48 + 24 = 72 clips in total.\nThe answer is 72.",
        "In May she sold 48 ÷ 2 = 24.\nAltogether 48 + 24 = 72.\nA: 72",
        "May: 48 x 1/2 = 24 clips.\nTotal: 48 + 24 = 72 clips.\nSo Natalia sold 72 clips altogether.",
        "May: 48/2 = 24. Total: 48 + 24 = 72. The final answer is \\boxed{72}.",
    ],
)
def test_correct_solutions_pass_in_every_format(answer: str) -> None:
    assert failed(answer) == {}


def test_annotation_with_wrong_result_is_named_by_line() -> None:
    reasons = failed(GOLD.replace("<<48+24=72>>72", "<<48+24=73>>73").replace("#### 72", "#### 73"))
    assert "line 2" in reasons["arithmetic"] and "48+24 = 73" in reasons["arithmetic"]


def test_inline_arithmetic_error_is_caught() -> None:
    reasons = failed("In May 48/2 = 24.\nIn total 48 + 24 = 82.\n#### 82")
    assert "but it is 72" in reasons["arithmetic"]


def test_final_answer_must_follow_from_the_steps() -> None:
    reasons = failed(GOLD.replace("#### 72", "#### 96"))
    assert "96 does not follow" in reasons["answer_follows"]


def test_number_found_nowhere_is_flagged() -> None:
    reasons = failed("In May 48/3 = 16.\nIn total 48 + 16 = 64.\n#### 64")
    assert "uses 3" in reasons["numbers_grounded"]


def test_numbers_stated_earlier_or_implied_are_grounded() -> None:
    q = "A worker earns $12 an hour for 3 weeks, 5 days a week, 8 hours a day. How much?"
    answer = "A week has 5 * 8 = 40 hours.\nSo 3 weeks is 3 * 40 = 120 hours.\nShe earns 120 * 12 = $1,440.\n#### 1,440"
    assert failed(answer, q) == {}


def test_answer_that_never_states_a_result() -> None:
    reasons = failed("In May she sold 48/2 = 24 clips.\nNow add the two months together.")
    assert "never states" in reasons["result_stated"]


@pytest.mark.parametrize(
    "answer,finish",
    [
        ("In May she sold 48/2 = 24 clips.\nIn total she sold 48 + ", None),
        ("In May she sold 48/2 = <<48/2=24", None),
        ("In May she sold 48/2 = 24 clips and then in", None),
        (GOLD, "length"),
    ],
)
def test_truncated_output_is_unfinished(answer: str, finish: str | None) -> None:
    assert not verdict(answer, finish_reason=finish).accept
    assert any(c.name == "finished" and not c.passed for c in verdict(answer, finish_reason=finish).checks)


def test_chains_and_percentages() -> None:
    a = vm.analyse(
        "A $80 coat is 25% off. What does it cost?",
        "The discount is 80 * 25% = 20.\nSo it costs 80 - 20 = 60 = 60 dollars.\n#### 60",
    )
    assert [s.correct for s in a.steps] == [True, True]
    assert a.final == 60 and a.final_is_last_result


def test_rounded_results_are_accepted_at_their_precision() -> None:
    a = vm.analyse("Split 10 dollars among 3 friends.", "Each gets 10/3 = 3.33 dollars.\n#### 3.33")
    assert a.steps[0].correct


def test_symbolic_equations_are_not_misread_as_arithmetic() -> None:
    a = vm.analyse(
        "Anna spent 1/4 of her money and has $24 left.",
        "She has X - X*1/4 = $24 left.\nSo X*3/4 = 24 and X = 24 / 3/4 = 32.\n#### 32",
    )
    assert not [s for s in a.steps if s.expression.startswith("1/4")]


def test_long_whitespace_does_not_blow_up_the_parser() -> None:
    a = vm.analyse("q", "Total is $30 + $20 = $50." + " " * 5000 + "Then 5 x $50 = $250.\n#### 250")
    assert len(a.steps) == 2


def test_markdown_and_latex_solutions_are_read() -> None:
    answer = (
        "In May she sold $\\frac{48}{2} = 24$ clips.\n"
        "April was twice May: $24 \\times 2 = 48$. Altogether she sold \\(48 + 24 = 72\\) clips.\n"
        "**Answer:** The answer is **72**."
    )
    a = vm.analyse(QUESTION, answer)
    assert [s.correct for s in a.steps] == [True, True, True]
    assert a.final == 72 and a.final_explicit
    assert failed(answer) == {}


def test_rewrites_of_an_expression_question_start_no_new_operation() -> None:
    # BIG-Bench Mistake multistep arithmetic, trace 147 (marked mistake-free by its annotators):
    # (-3) + (1 + 0) is -2, and `(-2 + 1)` adds the 1 a second time.
    question = "((1 + -4) + (1 + 0)) ="
    a = vm.analyse(question, "D = ((1 + -4) + (1 + 0)) = ((-3) + (1 + 0)) = (-2 + 1) = -1. So the answer is -1")
    assert [s.correct for s in a.steps] == [False]
    assert a.steps[0].wrong_link == "((-3) + (1 + 0)) = (-2 + 1), but the left side is -2 and the right -1"


def test_a_continuation_starts_from_the_previous_value_sign_and_all() -> None:
    word = "Tom has 3 bags of 2 apples, and each apple has 4 seeds. How many seeds?"
    assert vm.analyse(word, "2 * 3 = 6 * 4 = 24 seeds.\n#### 24").steps[0].correct
    # Trace 283: `-4 - -36` is 32, so `16 - (-32)` is no rewrite of it, nor a continuation of -16.
    a = vm.analyse(word, "(0 + 16) - (-4 - -36) = 16 - (-32) = 48.\n#### 48")
    assert not a.steps[0].correct and "the left side is -16 and the right 48" in a.steps[0].wrong_link
