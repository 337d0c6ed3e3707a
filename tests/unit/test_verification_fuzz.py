"""Malformed output never raises: whatever a model emits, the verifier returns a verdict."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slmflow.core.records import Evidence, VerifyRequest
from verification.learned import LearnedVerifier
from verification.verifier import Verifier

RULES = Verifier()
LEARNED = Verifier(learned=LearnedVerifier.load())
TOOLS = [
    {
        "name": "f.g",
        "description": "d",
        "parameters": {"type": "dict", "required": ["a"], "properties": {"a": {"type": "integer"}}},
    }
]
# Text that looks like the inputs the parsers care about, so fuzzing reaches their corners.
PIECES = st.sampled_from(
    [
        "<<",
        ">>",
        "=",
        "####",
        "\\boxed{",
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        "$",
        "%",
        "x",
        " ",
        "\n",
        "1,000",
        "3.5",
        "-2",
        "/",
        "*",
        "f.g(",
        "a=",
        "'",
        '"',
        "name",
        "arguments",
        ":",
        ",",
        "The answer is",
        "A:",
        "[1]",
        "Rust",
        "...",
        "0",
        "÷",
    ]
)
TEXT = st.one_of(st.text(max_size=200), st.lists(PIECES, max_size=40).map("".join))
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(["classify", "extract", "answer", "math", "tool_call"]),
    text=TEXT,
    output=JSONISH,
    question=TEXT,
    evidence=st.lists(TEXT, max_size=2),
    finish=st.sampled_from([None, "stop", "length"]),
    tools=st.sampled_from([None, [], TOOLS, [{"x": 1}], [{"function": "junk"}]]),
)
def test_any_output_gets_a_verdict(
    kind: str, text: str, output: Any, question: str, evidence: list[str], finish: str | None, tools: list | None
) -> None:
    req = VerifyRequest(
        kind=kind,
        source=question,
        text=text,
        output=output if kind != "answer" else text,
        question=question,
        finish_reason=finish,
        tools=tools,
        choices=["a", "b"],
        json_schema={"type": "object"},
        evidence=[
            Evidence(chunk_id=str(i), doc_id="d", text=t, score=1.0, collection="c") for i, t in enumerate(evidence, 1)
        ],
    )
    for verifier in (RULES, LEARNED):
        verdict = verifier.verify(req)
        assert 0.0 <= verdict.score <= 1.0
        assert verdict.accept or verdict.reasons
