"""Alternatives given offline (`alternatives` in a verify line) and in the flow: agreement with
other fleet members' answers, each weighed by its own checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows.cascade import UnitContext
from flows.ledger import Ledger
from flows.spec import build_job
from flows.unit import execute_unit
from slmflow.core.records import Draft, Status, VerifyRequest
from slmflow.core.settings import Settings
from tests.support.verification_data import data_dir
from verification import agreement
from verification import math as vm
from verification import sources as S
from verification.jsonl import output_line, parse_line
from verification.verifier import Verifier

QUESTION = "Tom has 3 bags of 4 apples. He eats 2. How many are left?"
RIGHT = "He has 3 * 4 = 12 apples.\nAfter eating, 12 - 2 = 10 are left.\n#### 10"
WRONG = "He has 3 * 4 = 12 apples.\nAfter eating, 12 + 2 = 14 are left.\n#### 14"  # consistent but wrong
SLOPPY_TEN = "He has 3 * 4 = 13 apples.\n13 - 2 = 10.\n#### 10"  # right number, wrong arithmetic


def math(text: str, alternatives: list[str]) -> VerifyRequest:
    return VerifyRequest(
        kind="math", source=QUESTION, question=QUESTION, text=text, output=text, alternatives=alternatives
    )


def check(req: VerifyRequest):
    return next(c for c in Verifier().verify(req).checks if c.name == "alternatives")


def test_an_agreeing_sound_alternative_passes_and_is_named() -> None:
    got = check(math(RIGHT, ["3 * 4 - 2 = 10. The answer is 10", "The answer is 14"]))
    assert got.passed and got.reason == "agrees with alternative 1; differs from alternative 2: 14"


def test_no_agreement_rejects_a_consistent_wrong_answer() -> None:
    assert Verifier().verify(math(WRONG, [])).accept  # out of the process checks' reach alone
    verdict = Verifier().verify(math(WRONG, ["12 - 2 = 10\nThe answer is 10", "The answer is 10"]))
    assert not verdict.accept and "alternatives: no alternative agrees" in verdict.reasons[0]


def test_an_alternative_with_wrong_arithmetic_is_weak_evidence() -> None:
    weak = check(math(RIGHT, [SLOPPY_TEN]))
    assert not weak.passed and "fails its own checks" in weak.reason
    assert check(math(RIGHT, [SLOPPY_TEN, SLOPPY_TEN])).passed  # two weak votes make one


def test_agreement_never_overrules_the_process_checks() -> None:
    broken = "He has 3 * 4 = 13 apples.\n13 - 2 = 11 are left.\n#### 11"
    verdict = Verifier().verify(math(broken, ["The answer is 11", "The answer is 11"]))
    assert not verdict.accept and any(r.startswith("arithmetic:") for r in verdict.reasons)


def test_unreadable_alternatives_are_inconclusive() -> None:
    got = check(math(RIGHT, ["I am not sure.", ""]))
    assert got.passed and got.reason.startswith("inconclusive")


def test_classify_extract_and_tool_call_compare_their_outputs() -> None:
    classify = VerifyRequest(
        kind="classify",
        source="Ticket: my card was charged twice",
        text="billing",
        output="billing",
        choices=["shipping", "billing"],
        alternatives=["Billing", "shipping"],
    )
    assert check(classify).passed and "agrees with alternative 1" in check(classify).reason
    extract = VerifyRequest(
        kind="extract",
        source="Order NB-7 for a Nimbus Cam",
        text="",
        output={"order": "NB-7", "product": "Nimbus Cam"},
        alternatives=['{"order": "NB-7", "product": "Nimbus Hub"}', "not json"],
    )
    got = check(extract)
    assert not got.passed and "product='nimbus hub'" in got.reason and "unreadable: 2" in got.reason
    tools = [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "dict", "required": ["city"], "properties": {"city": {"type": "string"}}},
        }
    ]
    call = VerifyRequest(
        kind="tool_call",
        source="Weather in Paris?",
        question="Weather in Paris?",
        text="get_weather(city='Paris')",
        output=None,
        tools=tools,
        alternatives=['[{"name": "get_weather", "arguments": {"city": "paris"}}]'],
    )
    assert check(call).passed


def test_answers_are_not_compared() -> None:
    req = VerifyRequest(kind="answer", source="q", text="a", output="a", alternatives=["b"])
    assert agreement.check(req) is None


def test_the_verify_line_carries_alternatives_and_records_the_agreeing_one() -> None:
    line = json.dumps({"id": "x", "kind": "math", "question": QUESTION, "answer": RIGHT, "alternatives": ["#### 10"]})
    item = parse_line(1, line)
    out = json.loads(output_line(item, Verifier().verify(item.request())))
    assert out["accept"] and out["reasons"] == ["alternatives: agrees with alternative 1"]
    old = parse_line(1, json.dumps({"id": "y", "kind": "math", "question": QUESTION, "answer": RIGHT}))
    assert old.alternatives == [] and json.loads(output_line(old, Verifier().verify(old.request())))["accept"]


def test_real_gsm8k_answers_with_gpt3_alternatives() -> None:
    """The first 40 GSM8K questions: Mixtral's answers judged against the four GPT-3 answers.
    Fails if parsing real answers regresses (a final number not read turns a vote inconclusive)."""
    rows = [r for r in S.gsm8k_answers(data_dir(), (S.SMALL,), alternatives=True)][:40]
    checks = [check(r.item.request()) for r in rows]
    stated = [vm.analyse(r.item.question, r.item.answer).final is not None for r in rows]
    # Inconclusive only where the answer itself states no number (one Mixtral answer is cut off).
    assert [c.reason.startswith("inconclusive") for c in checks] == [not s for s in stated]
    caught = sum(not c.passed for c, r in zip(checks, rows) if not r.label)
    wrong = sum(not r.label for r in rows)
    assert caught >= 0.75 * wrong
    kept = sum(c.passed for c, r in zip(checks, rows) if r.label)
    assert kept >= 0.6 * sum(r.label for r in rows)


# ----------------------------------------------------------------------- in the flow


class _Fleet:
    """The small model labels everything 'shipping' at temperature 0 and 'returns' when sampled."""

    def __init__(self) -> None:
        self.temperatures: list[float] = []
        self.verified: list[VerifyRequest] = []

    def search(self, collection, query, k):
        return []

    def small(self, request):
        self.temperatures.append(request.temperature)
        label = "returns" if request.temperature > 0 else "shipping"
        return Draft(model="s", text=label, output=label, tokens_in=5, tokens_out=1, latency_s=0.0, confidence=0.9)

    def frontier(self, request):
        return Draft(model="f", text="returns", output="returns", tokens_in=5, tokens_out=1, latency_s=0.0)

    def verify(self, request):
        self.verified.append(request)
        return Verifier().verify(request)


@pytest.mark.parametrize("alternatives", [(0, 0.0), (2, 0.7)])
def test_the_flow_asks_the_fleet_for_alternatives_when_configured(alternatives) -> None:
    job = build_job(
        {
            "name": "faq",
            "inputs": {"items": [{"id": "1", "text": "Is my parcel late?"}]},
            "collections": {},
            "tasks": [{"id": "t", "kind": "classify", "choices": ["shipping", "returns"], "prompt": "{{ item.text }}"}],
        },
        Path("."),
    )
    fleet = _Fleet()
    # Costs are beside the point here: both models unpriced on purpose.
    unpriced = Settings(prices={"s": None, "f": None})
    ctx = UnitContext("faq", "r", fleet, Ledger(unpriced, "f"), alternatives=alternatives)
    result = execute_unit(ctx, job.spec.task("t"), next(job.iter_items()), {})
    small_check = fleet.verified[0]
    if alternatives[0] == 0:
        assert result.status is Status.accepted and small_check.alternatives == []
    else:
        # Two sampled alternatives disagree with the draft: it is escalated, and the frontier's
        # answer is verified without alternatives of the small model.
        assert small_check.alternatives == ["returns", "returns"] and fleet.temperatures[1:3] == [0.7, 0.7]
        assert result.status is Status.escalated and fleet.verified[-1].alternatives == []
