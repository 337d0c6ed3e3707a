"""Escalation labels (`<results_dir>/labels.jsonl`) as training data: labelled as the flow meant
them, skipped with a count when unusable, and never a crash."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.results import escalation_labels
from slmflow.core.records import Attempt, Draft, Status, TaskResult, Verdict
from verification.features import featurise
from verification.history import load_history, split_context

PROMPT = "Context:\n[1] Orders ship from Leeds\nwithin 2 days.\n[2] Returns take 30 days.\n\nWhere do orders ship from?"


def _result(item: str, small: str, big: str, accepted: bool) -> TaskResult:
    def attempt(role: str, text: str, accept: bool) -> Attempt:
        return Attempt(
            role=role,
            draft=Draft(model=role, text=text, output=text, tokens_in=1, tokens_out=1, latency_s=0.0),
            verdict=Verdict(accept=accept, score=1.0 if accept else 0.0, checks=[]),
        )

    return TaskResult(
        job="support",
        run_id="r1",
        item_id=item,
        task_id="reply",
        kind="answer",
        status=Status.escalated if accepted else Status.needs_review,
        prompt=PROMPT,
        attempts=[attempt("small", small, False), attempt("frontier", big, accepted)],
    )


def test_labels_written_by_the_flow_are_read_back(tmp_path: Path) -> None:
    results = [
        _result("a", "They ship from Leeds [1].", "They ship from Leeds [1].", True),  # agree: right
        _result("b", "They ship from York [1].", "They ship from Leeds [1].", True),  # wrong
        _result("c", "They ship from York [1].", "From Paris [2].", False),
    ]  # nothing known
    path = tmp_path / "labels.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in escalation_labels(results)))
    examples, report = load_history(path, weight=3.0)
    assert [(e.group, e.label, e.weight) for e in examples] == [
        ("history:support:a:reply", 1, 3.0),
        ("history:support:b:reply", 0, 3.0),
    ]
    assert report.used == {"answer": 2} and sum(report.skipped.values()) == 1
    req = examples[1].item.request()
    assert [e.text for e in req.evidence] == ["Orders ship from Leeds\nwithin 2 days.", "Returns take 30 days."]
    assert featurise(req)  # the learned features can be computed from what was recorded


def test_split_context() -> None:
    evidence, question = split_context(PROMPT)
    assert [e.chunk_id for e in evidence] == ["1", "2"] and question == "Where do orders ship from?"
    assert split_context("No context here") == ([], "No context here")
    assert split_context("Context:\nnot numbered\n\nq")[0] == []


def test_an_empty_or_blank_file_gives_nothing(tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    path.write_text("\n  \n")
    examples, report = load_history(path)
    assert examples == [] and report.lines == 0 and not report.bad


def test_invalid_utf8_is_a_bad_line_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    path.write_bytes(b'{"kind": "answer"}\n\xff\xfe garbage\n')
    examples, report = load_history(path)
    assert examples == [] and [b.split(":")[0] for b in report.bad] == ["line 1", "line 2"]


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)
ROW = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(["answer", "math", "tool_call", "extract", "classify", 3, None]),
        "question": st.one_of(st.text(max_size=60), st.just(PROMPT), st.integers()),
        "small_output": JSONISH,
        "frontier_accepted": st.one_of(st.booleans(), st.none()),
        "agree": st.one_of(st.booleans(), st.text(max_size=3)),
    },
    optional={"tools": JSONISH, "job": JSONISH, "item_id": JSONISH},
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(lines=st.lists(st.one_of(ROW.map(json.dumps), st.text(max_size=40), JSONISH.map(json.dumps)), max_size=8))
def test_any_file_is_read_without_raising(tmp_path: Path, lines: list[str]) -> None:
    path = tmp_path / "labels.jsonl"
    path.write_text("\n".join(lines), encoding="utf-8", errors="surrogatepass")
    examples, report = load_history(path)
    for e in examples:
        assert e.label in (0, 1)
        featurise(e.item.request())
    assert len(examples) == sum(report.used.values())
