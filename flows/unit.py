"""One unit of work: one task of the DAG applied to one item.

ground -> draft on a small model -> verify -> accept, or escalate to the frontier and verify
that answer too. The plain function `execute_unit` holds the logic and takes its workers as
arguments, so it is testable without Ray or Prefect; `run_unit` is the Prefect task around it.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import ray
from prefect import task
from prefect.concurrency.sync import rate_limit
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed, Failed, State

from flows.budget import Budget
from flows.ledger import Ledger
from flows.prompts import build_request, search_query, with_feedback
from flows.spec import Item, TaskSpec
from slmflow.records import (Attempt, Draft, Evidence, GenerationRequest, Status, TaskResult,
                             Verdict, VerifyRequest)
from workers.engines import EngineOutputError
from workers.frontier import FrontierError

NEEDS_REVIEW = "NeedsReview"
INPUT_REJECTED = "InputRejected"
GENERATE_TIMEOUT_S = 900


class Workers(Protocol):
    """What a unit needs from the fleet. `workers.fleet.Fleet` provides it through Ray; tests may
    provide plain callables."""

    def search(self, collection: str, query: str, k: int) -> list[Evidence]: ...
    def small(self, request: GenerationRequest) -> Draft: ...
    def frontier(self, request: GenerationRequest) -> Draft: ...
    def verify(self, request: VerifyRequest) -> Verdict: ...


FRONTIER_RATE_LIMIT = "slmflow-frontier"


class RayWorkers:
    """Workers backed by the fleet's Ray actors. Frontier calls pass a Prefect global rate limit,
    so every concurrent flow on the same Prefect server shares one requests-per-minute budget."""

    def __init__(self, fleet):
        self.fleet = fleet

    def search(self, collection: str, query: str, k: int) -> list[Evidence]:
        return ray.get(self.fleet.retrieval.search.remote(collection, query, k), timeout=120)

    def small(self, request: GenerationRequest) -> Draft:
        actor = self.fleet.small_for(request.kind)
        return ray.get(actor.generate.remote(request), timeout=GENERATE_TIMEOUT_S)

    def frontier(self, request: GenerationRequest) -> Draft:
        rate_limit(FRONTIER_RATE_LIMIT, strict=True)
        return ray.get(self.fleet.frontier.generate.remote(request), timeout=GENERATE_TIMEOUT_S)

    def verify(self, request: VerifyRequest) -> Verdict:
        return ray.get(self.fleet.verifier.verify.remote(request), timeout=120)


class UnitContext:
    """Per-run state shared by every unit of the run (not a Prefect parameter)."""

    def __init__(self, job: str, run_id: str, workers: Workers, ledger: Ledger,
                 budget: Budget | None = None):
        self.job = job
        self.run_id = run_id
        self.workers = workers
        self.ledger = ledger
        self.budget = budget or Budget()


def _verify_request(task: TaskSpec, source: str, draft: Draft, evidence: list[Evidence]) -> VerifyRequest:
    return VerifyRequest(
        kind=task.kind, source=source, text=draft.text, output=draft.output,
        finish_reason=draft.finish_reason, confidence=draft.confidence, evidence=evidence,
        choices=task.choices, json_schema=task.schema_,
        min_confidence=task.verify.min_confidence, min_grounded=task.verify.min_grounded,
        min_support=task.verify.min_support)


def execute_unit(ctx: UnitContext, task: TaskSpec, item: Item, upstream: dict[str, Any]) -> TaskResult:
    start = time.perf_counter()
    w = ctx.workers
    policy = task.escalation
    attempts: list[Attempt] = []

    def attempt(role: str, request: GenerationRequest, evidence: list[Evidence]) -> Attempt:
        draft = w.small(request) if role == "small" else w.frontier(request)
        verdict = w.verify(_verify_request(task, request.messages[-1].content, draft, evidence))
        attempts.append(Attempt(role=role, draft=draft, verdict=verdict))
        return attempts[-1]

    def ground(top_k: int) -> list[Evidence]:
        if not task.grounding:
            return []
        return w.search(task.grounding.collection, search_query(task, item.data, upstream), top_k)

    evidence = ground(task.grounding.top_k if task.grounding else 0)
    request = build_request(task, item.data, upstream, evidence)
    status, error = Status.needs_review, None
    try:
        first = attempt("small", request, evidence)
    except EngineOutputError as exc:
        # Deterministic (e.g. the prompt does not fit the model's context): the same input fails
        # the same way, so it is neither retried nor escalated.
        first, status, error = None, Status.failed, f"input rejected by the small model: {exc}"
    if first is None:
        pass
    elif first.verdict.accept:
        status = Status.accepted
    elif policy.retry_small_with_more_evidence and task.grounding:
        evidence = ground(task.grounding.top_k * 2)
        request = build_request(task, item.data, upstream, evidence)
        if attempt("small", request, evidence).verdict.accept:
            status = Status.accepted

    for _ in range(policy.frontier_attempts if status is Status.needs_review else 0):
        estimate = ctx.ledger.frontier_estimate(attempts[0].draft.tokens_in, request.max_tokens)
        refused = ctx.budget.reserve(estimate)
        if refused:
            error = refused
            break
        try:
            escalated = attempt("frontier", with_feedback(request, attempts[-1].verdict.reasons), evidence)
        except FrontierError as exc:
            ctx.budget.settle(estimate, 0.0)
            error = f"escalation failed: {exc}"
            break
        ctx.budget.settle(estimate, ctx.ledger.draft_usd(escalated.draft))
        if escalated.verdict.accept:
            status = Status.escalated
            break
    if status is Status.needs_review and error is None and policy.frontier_attempts == 0:
        error = "verification failed and this task's policy does not escalate"

    final = attempts[-1] if attempts else None
    return TaskResult(
        job=ctx.job, run_id=ctx.run_id, item_id=item.id, task_id=task.id, kind=task.kind,
        status=status,
        # An unverified output is kept in `attempts` for review but never presented as the result.
        output=final.draft.output if final and status.verified else None,
        prompt=request.messages[-1].content,
        model=final.draft.model if final else None, score=final.verdict.score if final else None,
        reasons=[r for a in attempts for r in (f"{a.role}: {x}" for x in a.verdict.reasons)],
        attempts=attempts, citations=evidence, cost=ctx.ledger.entry(attempts),
        latency_s=time.perf_counter() - start, error=error)


def _retry_on_exceptions_only(task, task_run, state: State) -> bool:
    # A verdict or a rejected input is not a fault: retrying would only spend money again.
    return state.name not in (NEEDS_REVIEW, INPUT_REJECTED)


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[1, 5],
      retry_condition_fn=_retry_on_exceptions_only)
def run_unit(ctx: UnitContext, task: TaskSpec, item: Item, upstream: dict[str, Any]) -> State:
    result = execute_unit(ctx, task, item, upstream)
    if result.status is Status.accepted:
        return Completed(data=result, message=f"score {result.score:.2f}")
    if result.status is Status.escalated:
        return Completed(data=result, name="Escalated", message="; ".join(result.reasons)[:500])
    return Failed(data=result, name=INPUT_REJECTED if result.status is Status.failed else NEEDS_REVIEW,
                  message=(result.error or "; ".join(result.reasons))[:500])
