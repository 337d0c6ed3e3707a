"""One unit of work: one task of the DAG applied to one item.

ground -> draft on a small model -> verify -> accept, or escalate to the frontier and verify
that answer too. The plain function `execute_unit` holds the logic and takes its workers as
arguments, so it is testable without Ray or Prefect; `run_unit` is the Prefect task around it.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import ray
from prefect import task
from prefect.cache_policies import NO_CACHE, CacheKeyFnPolicy
from prefect.concurrency.sync import rate_limit
from prefect.states import Completed, Failed, State

from flows.budget import Budget
from flows.ledger import Ledger
from flows.prompts import build_request, search_query, with_feedback
from flows.spec import Item, TaskSpec
from slmflow.records import (Attempt, Draft, Evidence, GenerationRequest, Status, TaskResult, ToolCall,
                             Verdict, VerifyRequest)
from tools.executor import ToolExecutor
from tools.registry import FINAL_ANSWER, NO_TOOL, RESERVED, Tool, pseudo_tool
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


def _call(method, *args, timeout: float):
    """Call an actor method so that the call survives the actor's restart: Ray resubmits it once
    the actor is back (at-least-once). Ray's default is at-most-once, and then a call made while a
    restarted engine reloads its model fails at once, so Prefect's retries, seconds apart, run out
    long before the model is back (tests/integration/test_reliability.py, model-reload). Running
    a call twice is harmless here: generation, search and verification have no side effects, and
    a repeated frontier call costs one more request. A worker gone for good (its max_restarts
    spent) still fails the call, and `timeout` bounds the wait."""
    return ray.get(method.options(max_task_retries=-1).remote(*args), timeout=timeout)


class RayWorkers:
    """Workers backed by the fleet's Ray actors. Frontier calls pass a Prefect global rate limit,
    so every concurrent flow on the same Prefect server shares one requests-per-minute budget."""

    def __init__(self, fleet):
        self.fleet = fleet

    def search(self, collection: str, query: str, k: int) -> list[Evidence]:
        return _call(self.fleet.retrieval.search, collection, query, k, timeout=120)

    def small(self, request: GenerationRequest) -> Draft:
        actor = self.fleet.small_for(request.kind)
        return _call(actor.generate, request, timeout=GENERATE_TIMEOUT_S)

    def frontier(self, request: GenerationRequest) -> Draft:
        rate_limit(FRONTIER_RATE_LIMIT, strict=True)
        return _call(self.fleet.frontier.generate, request, timeout=GENERATE_TIMEOUT_S)

    def verify(self, request: VerifyRequest) -> Verdict:
        return _call(self.fleet.verifier.verify, request, timeout=120)


# Part of every cache key: bump it when execute_unit's logic or the meaning of a TaskResult changes,
# so that results stored by the older code are recomputed rather than reused.
UNIT_CACHE_VERSION = 2


@dataclass(frozen=True)
class UnitCache:
    """Reuse of verified unit results across runs: a crashed or interrupted run, run again, does
    not call a model for the units it already finished.

    Each unit's result is persisted by Prefect under a key (`unit_cache_key`) covering everything
    that decides it: the job, the task's spec, the item, the upstream outputs, the rendered prompt,
    and `version`, a digest of the run's models, verifier settings and collection contents
    (flows.job.cache_version). The cache is files under `storage`, so it needs neither the Prefect
    server nor the previous run's process. Only verified results (Completed states) are reused:
    a needs-review or failed unit runs again, because its cause may have been transient (a
    frontier outage, an exhausted budget).
    """

    storage: Path
    version: str
    refresh: bool = False  # recompute every unit and overwrite what is stored

    def task_options(self) -> dict[str, Any]:
        return {"cache_policy": CacheKeyFnPolicy(cache_key_fn=unit_cache_key),
                "persist_result": True, "result_storage": self.storage.resolve(),
                # Readable records that do not depend on pickling this code's classes.
                "result_serializer": "json", "refresh_cache": self.refresh}


class UnitContext:
    """Per-run state shared by every unit of the run (not a Prefect parameter)."""

    def __init__(self, job: str, run_id: str, workers: Workers, ledger: Ledger,
                 budget: Budget | None = None, cache: UnitCache | None = None,
                 tools: ToolExecutor | None = None):
        self.job = job
        self.run_id = run_id
        self.workers = workers
        self.ledger = ledger
        self.budget = budget or Budget()
        self.cache = cache
        self.tools = tools

    def offered(self, task: TaskSpec, pseudo: str) -> list[Tool] | None:
        """What a tool task's model may call: its allowlist plus `pseudo` (declining or
        finishing); None for the other kinds."""
        if not task.tools:
            return None
        if self.tools is None:
            raise RuntimeError(f"task {task.id!r} uses tools, but the run opened none")
        return [*self.tools.registry.select(task.tools), pseudo_tool(pseudo)]


def unit_cache_key(_task_run_context, parameters: dict[str, Any]) -> str | None:
    """The key a unit's result is stored under; None (no caching) when the run has no cache."""
    ctx: UnitContext = parameters["ctx"]
    if ctx.cache is None:
        return None
    task, item, upstream = parameters["task"], parameters["item"], parameters["upstream"]
    # The rendered prompt is implied by the spec, the item and upstream, but including it means a
    # change in how prompts are built (flows/prompts.py) invalidates results built the old way.
    # Evidence is retrieved inside the unit; the collections' contents are in `version`.
    request = build_request(task, item.data, upstream, [])
    payload = {"unit": UNIT_CACHE_VERSION, "config": ctx.cache.version, "job": ctx.job,
               "task": task.model_dump(mode="json", by_alias=True), "item": item.data,
               "upstream": upstream, "messages": [m.model_dump() for m in request.messages]}
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
    return f"unit-{digest}"


def verify_request(task: TaskSpec, request: GenerationRequest, draft: Draft,
                   evidence: list[Evidence], question: str | None = None) -> VerifyRequest:
    """`question`: the bare request when the prompt also carries an agent's transcript, so that
    which tool fits is judged on the request and argument values on everything."""
    source = request.messages[-1].content
    common = dict(source=source, text=draft.text, finish_reason=draft.finish_reason,
                  confidence=draft.confidence, evidence=evidence,
                  min_confidence=task.verify.min_confidence, min_grounded=task.verify.min_grounded,
                  min_support=task.verify.min_support)
    if request.tools is None:
        return VerifyRequest(kind=task.kind, output=draft.output, choices=task.choices,
                             json_schema=task.schema_, **common)
    call = as_call(draft.output)
    # A pseudo-tool means something only where it was offered; anywhere else it is an unknown
    # function like any other (the frontier can name tools it was not given).
    names = {t["function"]["name"] for t in request.tools}
    if call is not None and call.name == FINAL_ANSWER and FINAL_ANSWER in names:
        # An agent's answer: held to what the tools returned, like a grounded answer to its passages.
        # Tools return records, not prose, so word coverage says little: by default every number,
        # date and name the answer states must come from them or the request (min_support 0).
        answer = str(call.arguments.get("answer", ""))
        support = task.verify.min_support if task.verify.min_support is not None else 0.0
        return VerifyRequest(**{**common, "kind": "answer", "text": answer, "output": answer,
                                "min_support": support})
    offered = [t for t in request.tools if t["function"]["name"] not in RESERVED]
    # Declining is an empty call list; a call outside `offered` fails the schema check.
    output = [] if call is not None and call.name == NO_TOOL and NO_TOOL in names else (
        call.model_dump() if call is not None else draft.output)
    return VerifyRequest(kind="tool_call", output=output, tools=offered, grounded_arguments=True,
                         question=question, **common)


def as_call(output: Any) -> ToolCall | None:
    """A draft's {"name", "arguments"} as a ToolCall; None when it is not one."""
    if isinstance(output, dict) and isinstance(output.get("name"), str) and isinstance(output.get("arguments"), dict):
        return ToolCall(name=output["name"], arguments=output["arguments"])
    return None


@dataclass
class Cascade:
    """The outcome of draft -> verify -> (retry small) -> escalate for one request."""

    status: Status
    attempts: list[Attempt]
    request: GenerationRequest
    evidence: list[Evidence]
    error: str | None = None

    @property
    def final(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None


def cascade(ctx: UnitContext, task: TaskSpec, request: GenerationRequest, evidence: list[Evidence],
            reground: Callable[[], tuple[GenerationRequest, list[Evidence]]] | None = None,
            question: str | None = None) -> Cascade:
    """Small model first; if its draft fails verification, optionally once more with more evidence
    (`reground`), then the frontier per the task's escalation policy and the run's budget. Each
    draft is verified the same way, whoever wrote it."""
    w, policy = ctx.workers, task.escalation
    c = Cascade(Status.needs_review, [], request, evidence)

    def attempt(role: str, req: GenerationRequest, sent: GenerationRequest | None = None) -> Attempt:
        """Verified against `req`, even when `sent` (with the verifier's feedback) went out:
        the feedback quotes the rejected values, which must not ground the next draft."""
        draft = w.small(sent or req) if role == "small" else w.frontier(sent or req)
        verdict = w.verify(verify_request(task, req, draft, c.evidence, question))
        c.attempts.append(Attempt(role=role, draft=draft, verdict=verdict))
        return c.attempts[-1]

    try:
        first = attempt("small", request)
    except EngineOutputError as exc:
        # Deterministic (e.g. the prompt does not fit the model's context): the same input fails
        # the same way, so it is neither retried nor escalated.
        # Through Ray, `exc` is a RayTaskError subclass whose text is the actor's whole traceback
        # (with terminal colours); the reason a reviewer needs is its cause's message.
        reason = getattr(exc, "cause", None) or exc
        c.status, c.error = Status.failed, f"input rejected by the small model: {reason}"
        return c
    if first.verdict.accept:
        c.status = Status.accepted
    elif policy.retry_small_with_more_evidence and reground is not None:
        c.request, c.evidence = reground()
        if attempt("small", c.request).verdict.accept:
            c.status = Status.accepted

    for _ in range(policy.frontier_attempts if c.status is Status.needs_review else 0):
        estimate = ctx.ledger.frontier_estimate(c.attempts[0].draft.tokens_in, c.request.max_tokens)
        refused = ctx.budget.reserve(estimate)
        if refused:
            c.error = refused
            break
        try:
            escalated = attempt("frontier", c.request, with_feedback(c.request, c.attempts[-1].verdict.reasons))
        except FrontierError as exc:
            ctx.budget.settle(estimate, 0.0)
            c.error = f"escalation failed: {exc}"
            break
        ctx.budget.settle(estimate, ctx.ledger.draft_usd(escalated.draft))
        if escalated.verdict.accept:
            c.status = Status.escalated
            break
    if c.status is Status.needs_review and c.error is None and policy.frontier_attempts == 0:
        c.error = "verification failed and this task's policy does not escalate"
    return c


def ground(ctx: UnitContext, task: TaskSpec, item: Item, upstream: dict[str, Any], top_k: int) -> list[Evidence]:
    if not task.grounding:
        return []
    return ctx.workers.search(task.grounding.collection, search_query(task, item.data, upstream), top_k)


def scope(ctx: UnitContext, item: Item, task: TaskSpec) -> str:
    """What a side-effecting call is keyed by, besides the call itself (tools.effects)."""
    return f"{ctx.job}/{item.id}/{task.id}"


def execute_unit(ctx: UnitContext, task: TaskSpec, item: Item, upstream: dict[str, Any]) -> TaskResult:
    if task.kind == "agent":
        from flows.agent import execute_agent

        return execute_agent(ctx, task, item, upstream)
    start = time.perf_counter()
    offered = ctx.offered(task, NO_TOOL)

    def build(evidence: list[Evidence]) -> GenerationRequest:
        return build_request(task, item.data, upstream, evidence, offered)

    def reground() -> tuple[GenerationRequest, list[Evidence]]:
        evidence = ground(ctx, task, item, upstream, task.grounding.top_k * 2)
        return build(evidence), evidence

    evidence = ground(ctx, task, item, upstream, task.grounding.top_k if task.grounding else 0)
    c = cascade(ctx, task, build(evidence), evidence, reground if task.grounding else None)
    final = c.final
    output = final.draft.output if final and c.status.verified else None
    reasons = [r for a in c.attempts for r in (f"{a.role}: {x}" for x in a.verdict.reasons)]
    if task.kind == "tool_call" and c.status.verified:
        # Only a verified call runs; declining (no_suitable_tool) runs nothing.
        call = as_call(output)
        observation = None if call.name == NO_TOOL else ctx.tools.call(call, task.tools, scope(ctx, item, task))
        output = {"call": call.model_dump(), "observation": observation.model_dump() if observation else None}
        if observation is not None and not observation.ok:
            reasons.append(f"tool: {observation.error}")
    return TaskResult(
        job=ctx.job, run_id=ctx.run_id, item_id=item.id, task_id=task.id, kind=task.kind,
        status=c.status,
        # An unverified output is kept in `attempts` for review but never presented as the result.
        output=output, prompt=c.request.messages[-1].content,
        model=final.draft.model if final else None, score=final.verdict.score if final else None,
        reasons=reasons, attempts=c.attempts, citations=c.evidence, cost=ctx.ledger.entry(c.attempts),
        latency_s=time.perf_counter() - start, error=c.error)


def retry_on_exceptions_only(task, task_run, state: State) -> bool:
    # A verdict or a rejected input is not a fault: retrying would only spend money again.
    return state.name not in (NEEDS_REVIEW, INPUT_REJECTED)


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[1, 5],
      retry_condition_fn=retry_on_exceptions_only)
def run_unit(ctx: UnitContext, task: TaskSpec, item: Item, upstream: dict[str, Any]) -> State:
    result = execute_unit(ctx, task, item, upstream)
    if result.status is Status.accepted:
        return Completed(data=result, message=f"score {result.score:.2f}")
    if result.status is Status.escalated:
        return Completed(data=result, name="Escalated", message="; ".join(result.reasons)[:500])
    return Failed(data=result, name=INPUT_REJECTED if result.status is Status.failed else NEEDS_REVIEW,
                  message=(result.error or "; ".join(result.reasons))[:500])
