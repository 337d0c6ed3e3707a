"""Independent answers through the Workers protocol, with a fake fleet (no engines): a program of
thought and a second model's answer, compared with the answer under test."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from slmflow.core.records import Draft, GenerationRequest, VerifyRequest
from verification.independent import PROGRAM_PROMPT, IndependentChecker, agreement
from verification.learned import LearnedVerifier
from verification.sandbox import Limits
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


class FakeWorkers:
    """Workers.small() answered by a function of the request; records what it was asked."""

    def __init__(self, answer: Callable[[GenerationRequest], str | Draft]):
        self.answer = answer
        self.requests: list[GenerationRequest] = []

    def small(self, request: GenerationRequest) -> Draft:
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
        return Draft(
            model="other-small",
            text=got,
            output=output,
            tokens_in=10,
            tokens_out=10,
            latency_s=0.01,
            finish_reason="stop",
        )


def math_fleet(program: str, solution: str) -> FakeWorkers:
    return FakeWorkers(lambda r: program if r.messages[0].content == PROGRAM_PROMPT else solution)


def math_req(text: str) -> VerifyRequest:
    return VerifyRequest(kind="math", source=QUESTION, question=QUESTION, text=text, output=text)


FAST = Limits(timeout_s=4.0, cpu_s=1)


def by_name(checks) -> dict:
    return {c.name: c for c in checks}


def test_math_agreement_passes_both_checks() -> None:
    fleet = math_fleet("```python\nprint(3 * 4 - 2)\n```", "3*4 = 12, 12-2 = 10. The answer is 10")
    got = by_name(IndependentChecker(fleet, limits=FAST).checks(math_req(RIGHT)))
    assert got["program_of_thought"].passed and got["cross_model"].passed
    # The second opinion never sees the answer it checks.
    assert all("14" not in m.content and "#### 10" not in m.content for r in fleet.requests for m in r.messages)


def test_math_disagreement_fails_with_both_numbers_named() -> None:
    fleet = math_fleet("```python\nprint(3 * 4 - 2)\n```", "The answer is 10")
    got = by_name(IndependentChecker(fleet, limits=FAST).checks(math_req(WRONG)))
    assert not got["program_of_thought"].passed
    assert "prints 10" in got["program_of_thought"].reason and "states 14" in got["program_of_thought"].reason
    assert not got["cross_model"].passed and "other-small answers 10" in got["cross_model"].reason


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
    check = by_name(IndependentChecker(fleet, limits=FAST, cross_model=False).checks(math_req(RIGHT)))[
        "program_of_thought"
    ]
    assert check.passed and check.reason.startswith("inconclusive") and why in check.reason


def test_a_failing_worker_is_inconclusive() -> None:
    def boom(request: GenerationRequest) -> str:
        raise TimeoutError("engine busy")

    checks = IndependentChecker(FakeWorkers(boom), limits=FAST).checks(math_req(WRONG))
    assert [c.name for c in checks] == ["program_of_thought", "cross_model"]
    assert all(c.passed and "TimeoutError: engine busy" in c.reason for c in checks)


def test_a_percent_program_may_print_a_fraction() -> None:
    q = "A shop sold 20 of its 80 lamps. What percent of the lamps did it sell?"
    req = VerifyRequest(kind="math", source=q, question=q, text="20 / 80 = 0.25, so 25%.\n#### 25", output="")
    fleet = math_fleet("```python\nprint(20 / 80)\n```", "The answer is 25")
    assert all(c.passed and not c.reason for c in IndependentChecker(fleet, limits=FAST).checks(req))


def test_classify_compares_labels() -> None:
    req = VerifyRequest(
        kind="classify",
        source="Where is my parcel?",
        text="shipping",
        output="shipping",
        choices=["shipping", "billing"],
    )
    agree = IndependentChecker(FakeWorkers(lambda r: "Shipping")).checks(req)
    assert agree[0].passed and not agree[0].reason
    fleet = FakeWorkers(lambda r: "billing")
    disagree = IndependentChecker(fleet).checks(req)
    assert not disagree[0].passed and "'billing'" in disagree[0].reason
    assert fleet.requests[0].kind == "classify" and fleet.requests[0].choices == ["shipping", "billing"]
    off = IndependentChecker(FakeWorkers(lambda r: "refunds")).checks(req)
    assert off[0].passed and "not a choice" in off[0].reason


def test_extract_compares_fields_and_scores_the_agreeing_share() -> None:
    schema = {"type": "object", "properties": {"order": {"type": "string"}, "product": {"type": "string"}}}
    req = VerifyRequest(
        kind="extract",
        source="Order NB-7 for a Nimbus Cam",
        text="",
        json_schema=schema,
        output={"order": "NB-7", "product": "Nimbus Cam"},
    )
    same = IndependentChecker(FakeWorkers(lambda r: '{"order": "nb-7 ", "product": "Nimbus  Cam"}')).checks(req)
    assert same[0].passed
    fleet = FakeWorkers(lambda r: '{"order": "NB-7", "product": "Nimbus Hub"}')
    half = IndependentChecker(fleet).checks(req)
    assert not half[0].passed and half[0].score == 0.5 and "product" in half[0].reason
    assert fleet.requests[0].kind == "extract" and fleet.requests[0].json_schema == schema
    junk = IndependentChecker(FakeWorkers(lambda r: "no idea")).checks(req)
    assert junk[0].passed and "not JSON" in junk[0].reason


@pytest.mark.parametrize(
    "stated,other,agree",
    [
        ("get_weather(city='Paris')", '[{"name": "get_weather", "arguments": {"city": "paris"}}]', True),
        ("get_weather(city='Paris')", "get_weather(city='Paris', unit='celsius')", True),  # optional extra
        (
            "[get_weather(city='Paris'), get_weather(city='Rome')]",
            "[get_weather(city='Rome'), get_weather(city='Paris')]",
            True,
        ),  # order does not matter
        ("get_weather(city='Paris')", "get_weather(city='Lyon')", False),
        ("get_weather(city='Paris')", "[]", False),  # the other model declines
        ("get_weather(city='Paris')", "get_weather()", False),  # a required argument missing
    ],
)
def test_tool_calls_are_compared_loosely(stated: str, other: str, agree: bool) -> None:
    req = VerifyRequest(
        kind="tool_call",
        source="Weather in Paris?",
        question="Weather in Paris?",
        text=stated,
        output=None,
        tools=TOOLS,
    )
    check = IndependentChecker(FakeWorkers(lambda r: other)).checks(req)[0]
    assert check.passed is agree and (agree or "independently" in check.reason)


def test_answers_are_not_comparable_and_get_no_second_opinion() -> None:
    fleet = FakeWorkers(lambda r: "x")
    req = VerifyRequest(kind="answer", source="q", text="a", output="a")
    assert IndependentChecker(fleet).checks(req) == [] and fleet.requests == []


def test_agreement_feature() -> None:
    from verification.independent import Outcome

    assert agreement([]) == (0.0, 0.5)
    assert agreement([Outcome("a", None, "")]) == (0.0, 0.5)
    assert agreement([Outcome("a", True, ""), Outcome("b", False, "")]) == (1.0, 0.5)
    assert agreement([Outcome("a", True, ""), Outcome("b", None, "")]) == (1.0, 1.0)


def test_the_verifier_treats_disagreement_as_a_veto() -> None:
    learned = LearnedVerifier.load()
    plain = Verifier(learned=learned).verify(math_req(WRONG))
    assert plain.accept  # consistent, grounded and wrong: out of the checks' reach alone
    fleet = math_fleet("```python\nprint(3 * 4 - 2)\n```", "The answer is 10")
    checked = Verifier(learned=learned, independent=IndependentChecker(fleet, limits=FAST)).verify(math_req(WRONG))
    assert not checked.accept and checked.score == 0.0
    assert any(r.startswith("program_of_thought:") for r in checked.reasons)
    agreeing = Verifier(
        learned=learned,
        independent=IndependentChecker(math_fleet("```python\nprint(3 * 4 - 2)\n```", "The answer is 10"), limits=FAST),
    ).verify(math_req(RIGHT))
    alone = Verifier(learned=learned).verify(math_req(RIGHT))
    assert agreeing.accept == alone.accept and agreeing.score == alone.score
    rules = Verifier(independent=IndependentChecker(fleet, limits=FAST)).verify(math_req(WRONG))
    assert not rules.accept and "cross_model" in " ".join(rules.reasons)


def test_the_agreement_simulation_is_deterministic() -> None:
    from benchmarks.agreement_study import SCENARIOS, simulate
    from verification.data import Example

    examples = [Example(math_req(RIGHT), i % 2, f"g{i}", "gold") for i in range(400)]
    first = simulate(examples, SCENARIOS[0], "dev")
    assert (first == simulate(examples, SCENARIOS[0], "dev")).all()
    right = first[[e.label == 1 for e in examples]]
    assert 0.8 < right[right[:, 0] == 1][:, 1].mean() < 0.97  # q_right = 0.9


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from verification.sandbox import SandboxResult  # noqa: E402


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
    for check in IndependentChecker(FakeWorkers(lambda r: reply), run=fake_run).checks(req):
        assert 0 <= check.score <= 1
