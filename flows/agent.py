"""An agent task: a bounded loop of tool call -> observation -> ... -> final answer, per item.

Every step is its own verified unit of work and its own Prefect task run: the small model
proposes the next call, the verifier checks it (allowlist, arguments against the schema and
grounded in the request or earlier results), and only a step that fails goes to the frontier.
So one hard step does not send the whole episode to the frontier, and the UI shows, step by
step, who did what (Completed = small model, Escalated = frontier, NeedsReview = neither).

The episode ends with a verified `final_answer`, or in needs-review when a step cannot be
verified, `max_steps` is reached, or the episode's spend passes `max_usd`.
"""

from __future__ import annotations

import json
import time
from typing import Any, cast

from prefect import task as prefect_task
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed, Failed, State
from prefect.transactions import CommitMode, transaction

from flows.cascade import UnitContext, cascade, ground, verified_call
from flows.prompts import build_request
from flows.retry import retrying
from flows.spec import AgentLimits, Item, TaskSpec
from flows.states import ESCALATED, INPUT_REJECTED, NEEDS_REVIEW, retry_on_exceptions_only
from flows.templates import render
from slmflow.core.records import AgentStep, CostEntry, Evidence, Observation, Status, TaskResult
from tools.registry import FINAL_ANSWER


def execute_agent(ctx: UnitContext, task: TaskSpec, item: Item, upstream: dict[str, Any]) -> TaskResult:
    start = time.perf_counter()
    limits = task.agent or AgentLimits()
    evidence = ground(ctx, task, item, upstream, task.grounding.top_k if task.grounding else 0)
    steps: list[AgentStep] = []
    status, error, answer = Status.needs_review, None, None
    for n in range(1, limits.max_steps + 1):
        step = _run_step(ctx, task, item, upstream, evidence, steps, name=f"{task.id}[{item.id}] step {n}")
        if not isinstance(step, AgentStep):  # the step raised, even after its retries
            error = f"step {n}: {type(step).__name__}: {step}"[:1000]
            status = Status.failed
            break
        steps.append(step)
        spent = steps_cost(steps).usd
        if not step.status.verified:
            status, error = step.status, f"step {n}: {step.error or 'could not be verified'}"
            break
        if step.call is not None and step.call.name == FINAL_ANSWER:
            answer = step.call.arguments.get("answer")
            # The episode is 'accepted' only if the small model did every step.
            status = Status.escalated if any(s.role == "frontier" for s in steps) else Status.accepted
            break
        if limits.max_usd is not None and spent > limits.max_usd:
            error = f"episode spent ${spent:.4f}, over its max_usd ${limits.max_usd:.4f}"
            break
    else:
        error = f"no final answer within max_steps={limits.max_steps}"

    attempts = [a for s in steps for a in s.attempts]
    last = attempts[-1] if attempts else None
    return TaskResult(
        job=ctx.job,
        run_id=ctx.run_id,
        item_id=item.id,
        task_id=task.id,
        kind=task.kind,
        status=status,
        output={"answer": answer, "steps": len(steps)} if status.verified else None,
        prompt=render(task.prompt, item=item.data, upstream=upstream, evidence=evidence),
        model=last.draft.model if last else None,
        score=last.verdict.score if last else None,
        reasons=[f"step {s.n} {a.role}: {r}" for s in steps for a in s.attempts for r in a.verdict.reasons],
        attempts=attempts,
        citations=evidence,
        cost=steps_cost(steps),
        latency_s=time.perf_counter() - start,
        error=error,
        steps=steps,
    )


def _run_step(
    ctx: UnitContext,
    task: TaskSpec,
    item: Item,
    upstream: dict[str, Any],
    evidence: list[Evidence],
    history: list[AgentStep],
    name: str,
) -> AgentStep | BaseException:
    """One step, as its own Prefect task run or as a plain call (UnitContext.step_task_runs); an
    exception that outlived the retries is returned, not raised."""
    if not ctx.step_task_runs:
        try:
            return retrying(lambda: execute_step(ctx, task, item, upstream, evidence, history), ctx.retries)
        except Exception as exc:
            return exc
    # Committed at once: a step's tool call has happened, so when the episode ends in needs-review
    # (a failed state), Prefect must not show its steps as rolled back.
    with transaction(commit_mode=CommitMode.EAGER):
        state = agent_step.with_options(task_run_name=name, retries=ctx.retries)(
            ctx, task, item, upstream, evidence, history, return_state=True
        )
    # The task returns a State whose data is the step (or the exception that ended its retries).
    return cast("AgentStep | BaseException", state.result(raise_on_failure=False))


def execute_step(
    ctx: UnitContext,
    task: TaskSpec,
    item: Item,
    upstream: dict[str, Any],
    evidence: list[Evidence],
    history: list[AgentStep],
) -> AgentStep:
    """One step: propose, verify, escalate if needed, and run the verified call."""
    n = len(history) + 1
    offered = ctx.offered(task, FINAL_ANSWER)
    request = build_request(task, item.data, upstream, evidence, offered, transcript(history))
    question = render(task.prompt, item=item.data, upstream=upstream, evidence=evidence)
    # What the tools returned is evidence too: a final answer is held to it.
    seen = [
        Evidence(
            chunk_id=f"step-{s.n}", doc_id=s.observation.tool, text=s.observation.text(), score=1.0, collection="tools"
        )
        for s in history
        if s.observation is not None
    ]
    c = cascade(ctx, task, request, evidence + seen, question=question)
    cost = ctx.ledger.entry(c.attempts, c.request)
    if not c.status.verified:
        return AgentStep(n=n, status=c.status, attempts=c.attempts, error=c.error, cost=cost)
    call = verified_call(c)
    observation = None if call.name == FINAL_ANSWER else ctx.run_tool(task, item, call)
    return AgentStep(
        n=n,
        role=c.attempts[-1].role,
        status=c.status,
        call=call,
        observation=observation,
        attempts=c.attempts,
        cost=cost,
    )


@prefect_task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[1, 5], retry_condition_fn=retry_on_exceptions_only)
def agent_step(
    ctx: UnitContext,
    task: TaskSpec,
    item: Item,
    upstream: dict[str, Any],
    evidence: list[Evidence],
    history: list[AgentStep],
) -> State:
    step = execute_step(ctx, task, item, upstream, evidence, history)
    what = step.call.name if step.call else "no verified call"
    if step.status is Status.accepted:
        return Completed(data=step, message=f"small model: {what}")
    if step.status is Status.escalated:
        return Completed(data=step, name=ESCALATED, message=f"frontier: {what}")
    reasons = [r for a in step.attempts for r in a.verdict.reasons]
    return Failed(
        data=step,
        name=INPUT_REJECTED if step.status is Status.failed else NEEDS_REVIEW,
        message=(step.error or "; ".join(reasons))[:500] or step.status.value,
    )


def transcript(history: list[AgentStep]) -> str:
    """The earlier steps as the next prompt shows them."""
    lines = []
    for s in history:
        if s.call is None:  # only verified steps, which all made a call, reach the transcript
            continue
        observation = s.observation or Observation(tool=s.call.name, ok=True)
        lines.append(f"{s.n}. {s.call.name}({json.dumps(s.call.arguments)}) -> {observation.text()}")
    return "\n".join(lines)


def steps_cost(steps: list[AgentStep]) -> CostEntry:
    """Each step priced on its own: the counterfactual is every step's prompt on the frontier."""
    entries = [s.cost for s in steps]
    return CostEntry(
        tokens_in=sum(e.tokens_in for e in entries),
        tokens_out=sum(e.tokens_out for e in entries),
        usd=sum(e.usd for e in entries),
        counterfactual_usd=sum(e.counterfactual_usd for e in entries),
        frontier_usd=sum(e.frontier_usd for e in entries),
        unpriced=sorted({m for e in entries for m in e.unpriced}),
    )
