"""Live independent answers with a fake fleet member (no engines): alternatives asked of
`small(request)` and judged by `verification.agreement`, and a program of thought."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slmflow.core.records import Draft, GenerationRequest, VerifyRequest
from verification.independent import PROGRAM_PROMPT, IndependentChecker, alternatives, with_alternatives
from verification.sandbox import Limits, SandboxResult
from verification.verifier import Verifier

QUESTION = "Tom has 3 bags of 4 apples. He eats 2. How many are left?"
RIGHT = "He has 3 * 4 = 12 apples.\nAfter eating, 12 - 2 = 10 are left.\n#### 10"
WRONG = "He has 3 * 4 = 12 apples.\nAfter eating, 12 + 2 = 14 are left.\n#### 14"  # consistent but wrong
TOOLS = [
    {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "dict",
            "required": ["city"],
            "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
        },
    }
]
FAST = Limits(timeout_s=4.0, cpu_s=1)


class FakeSmall:
    """`small(request)` answered by a function of the request; records what it was asked."""

    def __init__(self, answer: Callable[[GenerationRequest], str | Draft]):
        self.answer = answer
        self.requests: list[GenerationRequest] = []

    def __call__(self, request: GenerationRequest) -> Draft:
        self.requests.append(request)
        got = self.answer(request)
        if isinstance(got, Draft):
            return got
        output: object = got
        if request.kind == "extract":
            try:
                output = json.loads(got)
            except json.JSONDecodeError:
                output = None
        return Draft(model="other-small", text=got, output=output, tokens_in=10, tokens_out=10, latency_s=0.01)


def math_fleet(program: str, solution: str) -> FakeSmall:
    return FakeSmall(lambda r: program if r.messages[0].content == PROGRAM_PROMPT else solution)


def math_req(text: str) -> VerifyRequest:
    return VerifyRequest(kind="math", source=QUESTION, question=QUESTION, text=text, output=text)


def by_name(verdict) -> dict:
    return {c.name: c for c in verdict.checks}


def test_alternatives_are_asked_without_the_answer_and_returned_as_text() -> None:
    small = FakeSmall(lambda r: "3*4 = 12, 12-2 = 10. The answer is 10")
    got = alternatives(math_req(WRONG), small, n=3, temperature=0.7)
    assert got == ["3*4 = 12, 12-2 = 10. The answer is 10"] * 3
    assert all(r.temperature == 0.7 for r in small.requests)
    # The second opinion never sees the answer it checks.
    assert all("14" not in m.content for r in small.requests for m in r.messages)


def test_failed_or_cut_off_alternatives_are_left_out() -> None:
    def flaky(request: GenerationRequest) -> Draft:
        raise TimeoutError("engine busy")

    assert alternatives(math_req(RIGHT), flaky, n=2) == []
    cut = Draft(
        model="m", text="The answer", output=None, tokens_in=1, tokens_out=1, latency_s=0, finish_reason="length"
    )
    assert alternatives(math_req(RIGHT), FakeSmall(lambda r: cut), n=2) == []


def test_answers_get_no_alternatives() -> None:
    small = FakeSmall(lambda r: "x")
    req = VerifyRequest(kind="answer", source="q", text="a", output="a")
    assert with_alternatives(req, small, n=2) is req and small.requests == []


def test_live_agreement_and_program_pass() -> None:
    fleet = math_fleet("```python\nprint(3 * 4 - 2)\n```", "3*4 = 12, 12-2 = 10. The answer is 10")
    verdict = Verifier(independent=IndependentChecker(fleet, limits=FAST)).verify(math_req(RIGHT))
    assert verdict.accept
    got = by_name(verdict)
    assert got["alternatives"].reason == "agrees with alternative 1"


def test_live_disagreement_rejects_and_names_both_numbers() -> None:
    fleet = math_fleet("```python\nprint(3 * 4 - 2)\n```", "3*4 = 12, 12-2 = 10. The answer is 10")
    verdict = Verifier(independent=IndependentChecker(fleet, limits=FAST)).verify(math_req(WRONG))
    assert Verifier().verify(math_req(WRONG)).accept  # consistent, grounded and wrong: out of the checks' reach
    assert not verdict.accept
    got = by_name(verdict)
    assert "prints 10" in got["program_of_thought"].reason and "states 14" in got["program_of_thought"].reason
    assert "differs from alternative 1: 10" in got["alternatives"].reason


@pytest.mark.parametrize(
    "program,why",
    [
        ("```python\nprint(1 / 0)\n```", "ZeroDivisionError"),
        ("```python\nwhile True:\n    pass\n```", "CPU limit"),
        ("```python\nimport socket\n```", "not allowed"),
        ("```python\nprint('ten')\n```", "printed no number"),
        ("I cannot write code.", "no program"),
    ],
)
def test_a_failed_program_is_inconclusive_not_a_rejection(program: str, why: str) -> None:
    fleet = math_fleet(program, "The answer is 10")
    req, extra = IndependentChecker(fleet, limits=FAST, cross_model=False).extend(math_req(RIGHT))
    assert req.alternatives == []
    assert extra[0].passed and extra[0].reason.startswith("inconclusive") and why in extra[0].reason


def test_a_percent_program_may_print_a_fraction() -> None:
    q = "A shop sold 20 of its 80 lamps. What percent of the lamps did it sell?"
    req = VerifyRequest(kind="math", source=q, question=q, text="20 / 80 = 0.25, so 25%.\n#### 25", output="")
    fleet = math_fleet("```python\nprint(20 / 80)\n```", "The answer is 25")
    _, extra = IndependentChecker(fleet, limits=FAST).extend(req)
    assert extra[0].passed and not extra[0].reason


def test_classify_alternatives_are_asked_with_the_choices() -> None:
    req = VerifyRequest(
        kind="classify",
        source="Where is my parcel?",
        text="shipping",
        output="shipping",
        choices=["shipping", "billing"],
    )
    small = FakeSmall(lambda r: "billing")
    verdict = Verifier(independent=IndependentChecker(small)).verify(req)
    assert not verdict.accept and "differs from alternative 1: 'billing'" in " ".join(verdict.reasons)
    assert small.requests[0].kind == "classify" and small.requests[0].choices == ["shipping", "billing"]


def test_extract_alternatives_are_asked_with_the_schema() -> None:
    schema = {"type": "object", "properties": {"order": {"type": "string"}}}
    out = {"order": "NB-7"}
    req = VerifyRequest(kind="extract", source="Order NB-7", text=json.dumps(out), json_schema=schema, output=out)
    small = FakeSmall(lambda r: '{"order": "nb-7 "}')
    assert Verifier(independent=IndependentChecker(small)).verify(req).accept
    assert small.requests[0].kind == "extract" and small.requests[0].json_schema == schema


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(["math", "classify", "extract", "tool_call"]),
    text=st.text(max_size=80),
    reply=st.text(max_size=80),
    printed=st.text(max_size=30),
    output=st.one_of(st.none(), st.text(max_size=10), st.dictionaries(st.text(max_size=4), st.integers(), max_size=3)),
    tools=st.sampled_from([None, [], TOOLS, [{"x": 1}]]),
)
def test_any_second_opinion_gives_checks_without_raising(kind, text, reply, printed, output, tools) -> None:
    def fake_run(code, limits):
        return SandboxResult(ok=True, stdout=printed, stderr="", error="", returncode=0)

    req = VerifyRequest(
        kind=kind,
        source=text,
        question=text,
        text=text,
        output=output,
        tools=tools,
        choices=["a", "b"],
        json_schema={"type": "object"},
    )
    verdict = Verifier(independent=IndependentChecker(FakeSmall(lambda r: reply), run=fake_run)).verify(req)
    assert all(0 <= c.score <= 1 for c in verdict.checks)
