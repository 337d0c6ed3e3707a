"""The coalesced list calls without Ray: each caller gets its own answer or its own exception
(workers.coalesce), answers and requests survive the JSON wire format unchanged (workers.wire),
and a batch's units are counted in the metrics as one record per tag set (workers.metrics)."""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

from slmflow.core.errors import EngineOutputError
from slmflow.core.records import (
    CheckResult,
    CostEntry,
    Draft,
    Evidence,
    GenerationRequest,
    Message,
    Status,
    TaskResult,
    Verdict,
    VerifyRequest,
)
from workers import metrics, wire
from workers.coalesce import Coalescer


class Ref:
    """What `send` returns in a run: a Ray ObjectRef; `.future()` is the one method used."""

    def __init__(self, future: Future):
        self._future = future

    def future(self) -> Future:
        return self._future


def test_each_caller_gets_its_own_answer_or_its_own_exception_through_decode() -> None:
    sent: list[list[Any]] = []
    gate = threading.Event()

    def send(batch: list[Any]) -> Ref:
        sent.append(batch)
        done: Future = Future()

        def answer() -> None:
            gate.wait(5)
            done.set_result([ValueError(f"bad {x}") if x % 3 == 0 else (b"x" if x == 4 else str(x)) for x in batch])

        threading.Thread(target=answer).start()
        return Ref(done)

    def decode(answer: Any) -> str:
        if answer == b"x":
            raise ValueError("undecodable")
        return f"decoded {answer}"

    coalescer = Coalescer(send, decode=decode, outstanding=1)
    with ThreadPoolExecutor(8) as pool:
        calls = {x: pool.submit(coalescer.call, x, 10) for x in range(1, 9)}
        threading.Timer(0.2, gate.set).start()
        outcomes = {x: f.exception() or f.result() for x, f in calls.items()}
    assert outcomes[1] == "decoded 1" and outcomes[8] == "decoded 8"
    assert str(outcomes[3]) == "bad 3" and str(outcomes[6]) == "bad 6"
    assert str(outcomes[4]) == "undecodable"  # its own fault, not its neighbours'
    assert sorted(x for batch in sent for x in batch) == list(range(1, 9))
    assert len(sent) < 8  # the callers that queued while a call was out went together


def test_a_call_that_cannot_be_sent_fails_every_caller_in_it() -> None:
    def send(batch: list[Any]) -> Ref:
        raise RuntimeError("actor gone")

    with pytest.raises(RuntimeError, match="actor gone"):
        Coalescer(send).call("x", timeout=5)


def test_requests_and_answers_survive_the_wire_unchanged() -> None:
    evidence = Evidence(chunk_id="c1", doc_id="d", text="Refunds take 5 days.", score=0.7, collection="kb")
    requests = [
        GenerationRequest(kind="classify", messages=[Message(role="user", content="ticket é")], choices=["a", "b"]),
        GenerationRequest(
            kind="tool_call",
            messages=[Message(role="system", content="s"), Message(role="user", content="u")],
            tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
            max_tokens=64,
            temperature=0.7,
        ),
    ]
    assert wire.load_requests(GenerationRequest, wire.dump_requests(requests)) == requests
    verify = [VerifyRequest(kind="answer", source="q", text="t", output={"k": [1, 2.5, None]}, evidence=[evidence])]
    assert wire.load_requests(VerifyRequest, wire.dump_requests(verify)) == verify

    draft = Draft(model="m", text="{}", output={}, tokens_in=3, tokens_out=1, latency_s=0.01, engine_s=0.002)
    refused = EngineOutputError("prompt too long")
    answers = wire.dump_answers([draft, refused])
    assert answers[1] is refused  # Ray pickles it: its type reaches the caller
    assert wire.load_answer(Draft, answers[0]) == draft
    verdict = Verdict(accept=False, score=0.25, checks=[CheckResult(name="c", passed=False, score=0.25, reason="r")])
    assert wire.load_answer(Verdict, wire.dump_answers([verdict])[0]) == verdict


def test_a_batchs_units_are_counted_once_per_tag_set(monkeypatch: pytest.MonkeyPatch) -> None:
    recorded: list[tuple[str, float, dict]] = []

    class Metric:
        def __init__(self, name: str):
            self.name = name

        def inc(self, value: float, tags: dict) -> None:
            recorded.append((self.name, value, tags))

    monkeypatch.setattr(metrics, "_ray_ready", lambda: True)
    monkeypatch.setattr(metrics, "_metric", lambda kind, name, description, tag_keys: Metric(name))

    def result(status: Status, usd: float, frontier: float) -> TaskResult:
        cost = CostEntry(tokens_in=0, tokens_out=0, usd=usd, counterfactual_usd=0.5, frontier_usd=frontier)
        return TaskResult(job="j", run_id="r", item_id="i", task_id="t", kind="classify", status=status, cost=cost)

    metrics.units_finished(
        [result(Status.accepted, 0.1, 0.0), result(Status.accepted, 0.1, 0.0), result(Status.escalated, 0.3, 0.3)]
    )
    by_name: dict[str, list] = {}
    for name, value, tags in recorded:
        by_name.setdefault(name, []).append((value, tags))
    assert sorted(by_name[metrics.UNITS], key=lambda x: x[0]) == [
        (1, {"job": "j", "kind": "classify", "status": "escalated"}),
        (2, {"job": "j", "kind": "classify", "status": "accepted"}),
    ]
    assert by_name[metrics.COST_USD] == [(pytest.approx(0.5), {"job": "j"})]
    assert by_name[metrics.FRONTIER_USD] == [(pytest.approx(0.3), {"job": "j"})]
    assert by_name[metrics.COUNTERFACTUAL_USD] == [(pytest.approx(1.5), {"job": "j"})]
