"""Review without a server: the decision form of each task kind, the checks a decision passes (the
Prefect server's own validator), what a decision makes of a unit, the labels it teaches and how the
verifier's history reads them; the results log, run parameters, the run's final state, the
per-job deployment form and the alert automations."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from flows.budget import Budget, BudgetSpec
from flows.decisions import (
    DecisionError,
    answer_of,
    check_decision,
    contract_schema,
    decided_result,
    decision_form,
    decision_labels,
    form_schema,
    review_markdown,
)
from flows.inputs import Item
from flows.parameters import RunParameters, TaskOverride, apply_parameters
from flows.resultlog import append_results, locked, read_results
from flows.spec import SpecError, build_job
from flows.states import run_state
from slmflow.core.records import Attempt, Draft, Evidence, Status, TaskResult, Verdict
from tools.registry import NO_TOOL, Tool, pseudo_tool
from verification.history import load_history

JOB = build_job(
    {
        "name": "desk",
        "inputs": {"items": [{"id": "t1", "text": "order A1 is late"}]},
        "tasks": [
            {"id": "route", "kind": "classify", "choices": ["shipping", "billing"], "prompt": "{{ item.text }}"},
            {
                "id": "details",
                "kind": "extract",
                "schema": {
                    "type": "object",
                    "properties": {"order_id": {"type": "string", "pattern": "^A[0-9]+$"}},
                    "required": ["order_id"],
                },
                "prompt": "{{ item.text }}",
            },
        ],
    },
    Path("."),
)
ITEM = Item(id="t1", data={"id": "t1", "text": "order A1 is late"})
WHERE = "job 'desk', task 'details', item 't1'"


def _attempt(role: str, output, reasons: list[str]) -> Attempt:
    return Attempt(
        role=role,
        draft=Draft(
            model=f"{role}-model", text=json.dumps(output), output=output, tokens_in=10, tokens_out=2, latency_s=0
        ),
        verdict=Verdict(
            accept=False,
            score=0.1,
            checks=[{"name": r.split(":")[0], "passed": False, "score": 0, "reason": r} for r in reasons],
        ),
    )


def _needs_review(task: str, small, frontier=None) -> TaskResult:
    attempts = [_attempt("small", small, ["schema: no order_id"])]
    if frontier is not None:
        attempts.append(_attempt("frontier", frontier, ["grounded_values: not in the ticket"]))
    return TaskResult(
        job="desk",
        run_id="run-1",
        item_id="t1",
        task_id=task,
        kind=JOB.spec.task(task).kind,
        status=Status.needs_review,
        prompt="order A1 is late",
        reasons=["small: schema: no order_id"],
        attempts=attempts,
        citations=[
            Evidence(
                chunk_id="kb#3", doc_id="kb/orders.md", text="Order ids look like A123.", score=0.8, collection="kb"
            )
        ],
    )


def test_the_form_offers_only_drafts_that_meet_the_contract() -> None:
    task = JOB.spec.task("details")
    result = _needs_review("details", {}, {"order_id": "A9"})  # small breaks the schema, frontier meets it
    schema = form_schema(task, result, None)
    assert schema["properties"]["decision"]["enum"] == ["approve-frontier", "correct", "reject"]
    assert schema["properties"]["answer"]["properties"]["order_id"]["title"] == "order_id"  # a labelled field

    check_decision({"decision": "approve-frontier", "reviewer": "ann"}, schema, WHERE)
    for raw, field in (
        ({"decision": "approve-small", "reviewer": "ann"}, "decision"),  # `{}` cannot be approved
        ({"decision": "correct", "answer": {"order_id": "nope"}, "reviewer": "ann"}, "answer.order_id"),
        ({"decision": "correct", "reviewer": "ann"}, "answer"),  # a correction needs the answer
        ({"decision": "reject", "reviewer": "ann"}, "reason"),  # a rejection needs a reason
        ({"decision": "reject", "reason": "", "reviewer": "ann"}, "reason"),
        ({"decision": "reject", "reason": "x", "reviewer": ""}, "reviewer"),
        ({"decision": "reject", "reason": "x", "reviewer": "ann", "extra": 1}, "extra"),
    ):
        with pytest.raises(DecisionError) as err:
            check_decision(raw, schema, WHERE)
        assert str(err.value).startswith(WHERE) and field.split(".")[0] in str(err.value), (raw, err.value)


def test_contracts_per_kind() -> None:
    assert contract_schema(JOB.spec.task("route"), None) == {"type": "string", "enum": ["shipping", "billing"]}
    lookup = Tool(
        name="lookup",
        description="",
        parameters={"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
    )
    tool_task = build_job(
        {
            "name": "t",
            "inputs": {"items": [{"id": "1"}]},
            "tools": {"sources": [{"function": "tests.support.sample_tools:add"}]},
            "tasks": [{"id": "call", "kind": "tool_call", "tools": ["add"], "prompt": "x"}],
        },
        Path("."),
    ).spec.task("call")
    contract = contract_schema(tool_task, [lookup, pseudo_tool(NO_TOOL)])
    schema = form_schema(tool_task, _needs_review("route", {"name": "lookup", "arguments": {}}), [lookup])
    assert [v["properties"]["name"]["const"] for v in contract["anyOf"]] == ["lookup", NO_TOOL]
    check_decision(
        {"decision": "correct", "answer": {"name": "lookup", "arguments": {"order_id": "A1"}}, "reviewer": "a"},
        schema,
        WHERE,
    )
    with pytest.raises(DecisionError):  # arguments held to the tool's schema
        check_decision(
            {"decision": "correct", "answer": {"name": "lookup", "arguments": {}}, "reviewer": "a"}, schema, WHERE
        )


def test_a_decision_makes_a_new_record_and_labels() -> None:
    before = _needs_review("details", {}, {"order_id": "A9"})
    schema = form_schema(JOB.spec.task("details"), before, None)

    approve = check_decision({"decision": "approve-frontier", "reviewer": "ann"}, schema, WHERE)
    after = decided_result(before, approve, "rev-1", answer_of(before, approve))
    assert after.status is Status.approved and after.status.verified and after.output == {"order_id": "A9"}
    assert after.model == "frontier-model" and after.review and after.review.overturned
    assert after.attempts == before.attempts and after.cost == before.cost  # what the run did stays
    labels = decision_labels(before, after, answer_of(before, approve))
    assert {(r["role"], r["correct"]) for r in labels} == {("small", False), ("frontier", True)}

    correct = check_decision(
        {"decision": "correct", "answer": {"order_id": "A1"}, "reviewer": "bob", "reason": "in the ticket"},
        schema,
        WHERE,
    )
    after = decided_result(before, correct, "rev-1", answer_of(before, correct))
    assert (after.status, after.model, after.review.overturned) == (Status.approved, "reviewer", False)
    labels = decision_labels(before, after, {"order_id": "A1"})
    assert {(r["role"], r["correct"]) for r in labels} == {("small", False), ("frontier", False), ("reviewer", True)}

    reject = check_decision({"decision": "reject", "reason": "no order in it", "reviewer": "cy"}, schema, WHERE)
    after = decided_result(before, reject, "rev-1", answer_of(before, reject))
    assert after.status is Status.rejected and not after.status.verified and after.output is None
    assert "no order in it" in after.error and after.review.reason == "no order in it"
    assert {r["correct"] for r in decision_labels(before, after, None)} == {False}


def test_review_labels_are_training_and_calibration_examples(tmp_path: Path) -> None:
    """verification.history reads a decision's labels: an `answer` task's draft with its passages."""
    prompt = "Context:\n[1] Orders ship from Leeds.\n\nWhere do orders ship from?"
    before = _needs_review("details", "From York [1].", "From Leeds [1].").model_copy(
        update={"kind": "answer", "prompt": prompt}
    )
    schema = {"properties": {"decision": {"enum": ["approve-frontier"]}}}
    from flows.decisions import Decision

    approve = Decision(decision="approve-frontier", reviewer="ann")
    after = decided_result(before, approve, "rev-1", "From Leeds [1].")
    rows = decision_labels(before, after, "From Leeds [1].") + [{"source": "review", "kind": "answer"}]
    path = tmp_path / "labels.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    examples, report = load_history(path)
    assert sorted((e.item.answer, e.label) for e in examples) == [("From Leeds [1].", 1), ("From York [1].", 0)]
    assert examples[0].item.evidence == ["Orders ship from Leeds."]
    assert report.bad == ["line 3: missing 'question', 'answer', 'correct'"] and schema


def test_the_review_page_shows_item_evidence_drafts_and_reasons() -> None:
    before = _needs_review("details", {}, {"order_id": "A9"})
    schema = form_schema(JOB.spec.task("details"), before, None)
    text = review_markdown(JOB.spec.task("details"), ITEM, before, schema)
    for needle in ('"text": "order A1 is late"', "kb/orders.md", "Order ids look like A123.", '"order_id": "A9"'):
        assert needle in text
    assert "grounded_values: not in the ticket" in text and "`approve-frontier`" in text
    form = decision_form(schema, text)
    from prefect._internal.pydantic.v2_schema import create_v2_schema

    assert create_v2_schema("Decision", model_base=form) == schema  # what RunInput.save stores
    assert form._description == text


def test_results_log_keeps_every_record_and_reads_the_last(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    first = _needs_review("details", {})
    other = first.model_copy(update={"task_id": "route", "status": Status.blocked})
    append_results(path, [first, other])
    decided = first.model_copy(update={"status": Status.approved, "output": {"order_id": "A1"}})
    order: list[str] = []

    def writer(name: str) -> None:
        with locked(path):
            order.append(f"{name}-in")
            append_results(path, [decided])
            order.append(f"{name}-out")

    threads = [threading.Thread(target=writer, args=(n,)) for n in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert order in (["a-in", "a-out", "b-in", "b-out"], ["b-in", "b-out", "a-in", "a-out"])  # one at a time
    assert len(path.read_text().splitlines()) == 4  # nothing rewritten
    assert [(r.task_id, r.status) for r in read_results(path)] == [
        ("details", Status.approved),
        ("route", Status.blocked),
    ]


def test_run_parameters_override_tasks_as_the_spec_would() -> None:
    params = RunParameters(
        budget=BudgetSpec(max_escalations=2),
        overrides={"details": TaskOverride(verify={"min_grounded": 0.5}, max_tokens=64)},
    )
    job = apply_parameters(JOB, params)
    assert job.spec.budget.max_escalations == 2
    assert job.spec.task("details").verify.min_grounded == 0.5 and job.spec.task("details").max_tokens == 64
    assert job.spec.task("route") == JOB.spec.task("route")
    with pytest.raises(SpecError, match=r"job 'desk', parameter 'overrides': unknown tasks \['nosuch'\]"):
        apply_parameters(JOB, RunParameters(overrides={"nosuch": TaskOverride()}))
    with pytest.raises(ValueError):
        TaskOverride(max_tokens=0)


def test_a_runs_state_says_whether_every_unit_is_verified() -> None:
    counts = {s.value: 0 for s in Status}
    assert run_state({**counts, "accepted": 3}, None).name == "Completed"
    review = run_state({**counts, "accepted": 1, "needs_review": 2, "blocked": 2}, None)
    assert (review.type.value, review.name) == ("COMPLETED", "NeedsReview") and "2 units await review" in review.message
    assert run_state({**counts, "failed": 1, "blocked": 1}, None).name == "Incomplete"


def test_the_budget_reports_its_first_refusal_once() -> None:
    seen: list[str] = []
    budget = Budget(BudgetSpec(max_escalations=1), on_exhausted=seen.append)
    assert budget.reserve(0.1) is None
    assert budget.reserve(0.1) and budget.reserve(0.1)
    assert seen == ["budget exhausted: 1/1 escalations used"] and budget.refused == 2


def test_each_jobs_deployment_form_names_its_tasks() -> None:
    from prefect.utilities.callables import parameter_schema

    from flows.deploy import job_deployment_schema
    from flows.job import run_job

    schema = job_deployment_schema(parameter_schema(run_job).model_dump(), JOB)
    overrides = schema["properties"]["overrides"]
    assert set(overrides["properties"]) == {"route", "details"} and overrides["additionalProperties"] is False
    from prefect.utilities.schema_tools import ValidationError, validate

    assert schema["properties"]["spec"]["title"] == "job"
    validate({"spec": "desk", "overrides": {"route": {"max_tokens": 8}}}, schema, raise_on_error=True)
    for bad in ({"spec": "desk", "overrides": {"nosuch": {}}}, {"spec": "desk", "limit": 0}):
        with pytest.raises(ValidationError):
            validate(bad, schema, raise_on_error=True)


def test_the_alert_automations_aim_at_the_webhook() -> None:
    from uuid import uuid4

    from prefect.events.schemas.automations import AutomationCore

    from flows.alerts import alert_automations

    block = uuid4()
    automations = [AutomationCore.model_validate(a) for a in alert_automations(block, max_review=5)]
    backlog, budget = automations
    assert backlog.trigger.match.model_dump()["slmflow.review.rank"] == "6"  # the 6th review: more than 5
    assert backlog.trigger.expect == {"slmflow.unit.needs-review"} and budget.trigger.expect == {
        "slmflow.budget.exhausted"
    }
    assert {str(a.actions[0].block_document_id) for a in automations} == {str(block)}
