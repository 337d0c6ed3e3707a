"""The per-(item, task) logic with plain fake workers at the Workers seam (no Ray, no Prefect)."""

import json
from pathlib import Path

import pytest

from flows.cascade import UnitContext
from flows.ledger import Ledger
from flows.spec import build_job
from flows.summary import RunSummary
from flows.unit import execute_unit
from slmflow.core.errors import FrontierError
from slmflow.core.prices import count_tokens
from slmflow.core.records import Status
from tests.support.fakes import SETTINGS, FakeWorkers, draft

SCHEMA = {"type": "object", "properties": {"order": {"type": "string"}}, "required": ["order"]}


def job():
    return build_job(
        {
            "name": "t",
            "inputs": {"items": [{"id": "1", "text": "Where is order NB-1?"}]},
            "collections": {},
            "tasks": [
                {"id": "label", "kind": "classify", "choices": ["a", "b"], "prompt": "{{ item.text }}"},
                {"id": "fields", "kind": "extract", "schema": SCHEMA, "prompt": "{{ item.text }}"},
            ],
        },
        Path("."),
    )


def run(task_id, workers):
    j = job()
    ctx = UnitContext("t", "run1", workers, Ledger(SETTINGS, "big"))
    return execute_unit(ctx, j.spec.task(task_id), next(j.iter_items()), {})


def frontier_tokens(request=None, text=""):
    """Tokens as the frontier's tokenizer counts them (the counterfactual's basis)."""
    messages = [m.model_dump() for m in request.messages] if request else None
    return count_tokens("big", SETTINGS.price_aliases, messages=messages, text=text)


def test_accepted_small_answer_is_not_escalated():
    w = FakeWorkers(draft("small", "a"))
    r = run("label", w)
    assert r.status is Status.accepted and r.output == "a" and r.model == "small"
    assert w.frontier_requests == []
    assert r.cost.usd == pytest.approx((100 * 1 + 10 * 2) / 1e6)
    # The same request on the frontier, counted with its tokenizer, not the small model's 100 + 10.
    (sent,) = w.small_requests
    assert r.cost.counterfactual_usd == pytest.approx(
        (frontier_tokens(sent) * 10 + frontier_tokens(text="a") * 20) / 1e6
    )
    assert r.cost.frontier_usd == 0


def test_failed_verification_escalates_with_feedback_and_verifies_frontier():
    w = FakeWorkers(draft("small", {"order": "NB-999"}), draft("big", {"order": "NB-1"}, tokens_in=120, tokens_out=8))
    r = run("fields", w)
    assert r.status is Status.escalated
    assert r.output == {"order": "NB-1"} and r.model == "big"
    assert [a.role for a in r.attempts] == ["small", "frontier"]
    assert "NB-999" in w.frontier_requests[0].messages[-1].content  # the reason, not the draft text
    assert "rejected by an automatic verifier" in w.frontier_requests[0].messages[-1].content
    assert r.cost.usd == pytest.approx((100 + 20 + 120 * 10 + 8 * 20) / 1e6)
    assert r.cost.counterfactual_usd == pytest.approx((120 * 10 + 8 * 20) / 1e6)
    assert r.cost.frontier_usd == pytest.approx((120 * 10 + 8 * 20) / 1e6)


def test_frontier_answer_failing_verification_needs_review_without_output():
    w = FakeWorkers(draft("small", "zzz"), draft("big", "also wrong"))
    r = run("label", w)
    assert r.status is Status.needs_review
    assert r.output is None  # never presented as a result
    assert any(x.startswith("frontier:") for x in r.reasons)


def test_frontier_error_is_an_explicit_needs_review():
    w = FakeWorkers(draft("small", "zzz"), FrontierError("RateLimitError: HTTP 429"))
    r = run("label", w)
    assert r.status is Status.needs_review and "429" in r.error and r.output is None


def test_low_confidence_choice_escalates():
    w = FakeWorkers(draft("small", "a", confidence=0.2), draft("big", "b", confidence=0.95))
    assert run("label", w).status is Status.escalated


def test_run_summary_counts_and_savings():
    w = FakeWorkers(draft("small", "a"))
    results = [run("label", w), run("label", FakeWorkers(draft("small", "x"), draft("big", "b")))]
    s = RunSummary.of("t", "run1", results, wall_s=2.0)
    assert s.counts["accepted"] == 1 and s.counts["escalated"] == 1 and s.tasks == 2
    assert s.savings_usd == pytest.approx(s.counterfactual_usd - s.usd)
    assert s.tasks_per_s == 1.0


def one_task_job(task_overrides, n_items=1):
    return build_job(
        {
            "name": "t",
            "inputs": {"items": [{"id": str(i), "text": "Where is order NB-1?"} for i in range(n_items)]},
            "collections": {"kb": {"path": "."}},
            "tasks": [
                {
                    "id": "label",
                    "kind": "classify",
                    "choices": ["a", "b"],
                    "prompt": "{{ item.text }}",
                    **task_overrides,
                }
            ],
        },
        Path("."),
    )


def run_with(task_overrides, workers, budget=None):
    from flows.budget import Budget, BudgetSpec

    j = one_task_job(task_overrides)
    ctx = UnitContext("t", "run1", workers, Ledger(SETTINGS, "big"), Budget(BudgetSpec(**(budget or {}))))
    return execute_unit(ctx, j.spec.task("label"), next(j.iter_items()), {}), ctx


def test_budget_on_escalations_ends_in_needs_review_with_reason():
    from flows.budget import Budget, BudgetSpec

    w = FakeWorkers(draft("small", "zzz"), draft("big", "a"))
    j = one_task_job({}, n_items=2)
    ctx = UnitContext("t", "run1", w, Ledger(SETTINGS, "big"), Budget(BudgetSpec(max_escalations=1)))
    first, second = (execute_unit(ctx, j.spec.task("label"), item, {}) for item in j.iter_items())
    assert first.status is Status.escalated
    assert second.status is Status.needs_review and second.output is None
    assert "1/1 escalations" in second.error
    assert len(w.frontier_requests) == 1  # the refused escalation never reached the frontier


def test_budget_in_dollars_reserves_the_estimate_before_calling():
    w = FakeWorkers(draft("small", "zzz"), draft("big", "a"))
    result, ctx = run_with({}, w, budget={"max_usd": 1e-6})
    assert result.status is Status.needs_review and "budget exhausted" in result.error
    assert w.frontier_requests == [] and ctx.budget.spent_usd == 0


def test_budget_settles_actual_cost():
    w = FakeWorkers(draft("small", "zzz"), draft("big", "a", tokens_in=100, tokens_out=10))
    result, ctx = run_with({}, w, budget={"max_usd": 1.0})
    assert result.status is Status.escalated
    assert ctx.budget.spent_usd == pytest.approx((100 * 10 + 10 * 20) / 1e6)
    assert ctx.budget.reserved_usd == pytest.approx(0)


def test_policy_without_escalation_needs_review():
    w = FakeWorkers(draft("small", "zzz"), draft("big", "a"))
    result, _ = run_with({"escalation": {"frontier_attempts": 0}}, w)
    assert result.status is Status.needs_review and "does not escalate" in result.error
    assert w.frontier_requests == []


def test_policy_retries_small_with_more_evidence_before_escalating():
    class Workers(FakeWorkers):
        def __init__(self):
            super().__init__(None, draft("big", "a"))
            self.k = []

        def search(self, collection, query, k):
            self.k.append(k)
            return super().search(collection, query, k)

        def small(self, request):
            return draft("small", "a" if len(self.k) == 2 else "zzz")

    w = Workers()
    result, _ = run_with(
        {"grounding": {"collection": "kb", "top_k": 2}, "escalation": {"retry_small_with_more_evidence": True}}, w
    )
    assert w.k == [2, 4]
    assert result.status is Status.accepted and [a.role for a in result.attempts] == ["small", "small"]
    assert w.frontier_requests == []


def test_frontier_attempts_are_bounded():
    w = FakeWorkers(draft("small", "zzz"), draft("big", "nope"))
    result, _ = run_with({"escalation": {"frontier_attempts": 2}}, w)
    assert result.status is Status.needs_review
    assert [a.role for a in result.attempts] == ["small", "frontier", "frontier"]


def test_escalations_become_verifier_labels(tmp_path):
    from flows.results import append_labels

    escalated = run("label", FakeWorkers(draft("small", "zzz"), draft("big", "b")))
    accepted = run("label", FakeWorkers(draft("small", "a")))
    path = tmp_path / "labels.jsonl"
    assert append_labels([escalated, accepted], path) == 1
    (row,) = [json.loads(line) for line in path.read_text().splitlines()]
    assert row["small_output"] == "zzz" and row["frontier_output"] == "b" and row["agree"] is False
    assert row["frontier_accepted"] is True and "NB-1" in row["question"]


def test_input_the_engine_rejects_fails_explicitly_without_escalation():
    from slmflow.core.errors import EngineOutputError

    class TooLong(FakeWorkers):
        def small(self, request):
            raise EngineOutputError("prompt has 5000 tokens; the model's context is 2048")

    w = TooLong(None, draft("big", "a"))
    r = run("label", w)
    assert r.status is Status.failed and "context is 2048" in r.error
    assert r.output is None and r.attempts == [] and w.frontier_requests == []
