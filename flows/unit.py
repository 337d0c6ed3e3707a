"""One unit of work: one task of the DAG applied to one item.

ground -> draft on a small model -> verify -> accept, or escalate to the frontier and verify
that answer too (`flows.cascade`). The plain function `execute_unit` holds the logic and takes its
workers through the context, so it is testable without Ray or Prefect; `run_unit` is the Prefect
task around it.
"""

from __future__ import annotations

import time
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed, Failed, State

from flows.agent import execute_agent
from flows.cascade import UnitContext, cascade, ground, verified_call
from flows.prompts import build_request
from flows.spec import Item, TaskSpec
from flows.states import ESCALATED, INPUT_REJECTED, NEEDS_REVIEW, retry_on_exceptions_only
from slmflow.core.records import Evidence, GenerationRequest, Status, TaskResult
from tools.registry import NO_TOOL


def execute_unit(ctx: UnitContext, task: TaskSpec, item: Item, upstream: dict[str, Any]) -> TaskResult:
    run = execute_agent if task.kind == "agent" else _execute_one
    return run(ctx, task, item, upstream)


def _execute_one(ctx: UnitContext, task: TaskSpec, item: Item, upstream: dict[str, Any]) -> TaskResult:
    start = time.perf_counter()
    offered = ctx.offered(task, NO_TOOL)

    def build(evidence: list[Evidence]) -> GenerationRequest:
        return build_request(task, item.data, upstream, evidence, offered)

    top_k = task.grounding.top_k if task.grounding else 0

    def reground() -> tuple[GenerationRequest, list[Evidence]]:
        evidence = ground(ctx, task, item, upstream, top_k * 2)
        return build(evidence), evidence

    evidence = ground(ctx, task, item, upstream, top_k)
    c = cascade(ctx, task, build(evidence), evidence, reground if task.grounding else None)
    final = c.final
    output = final.draft.output if final and c.status.verified else None
    reasons = [r for a in c.attempts for r in (f"{a.role}: {x}" for x in a.verdict.reasons)]
    if task.kind == "tool_call" and c.status.verified:
        # Only a verified call runs; declining (no_suitable_tool) runs nothing.
        call = verified_call(c)
        observation = None if call.name == NO_TOOL else ctx.run_tool(task, item, call)
        output = {"call": call.model_dump(), "observation": observation.model_dump() if observation else None}
        if observation is not None and not observation.ok:
            reasons.append(f"tool: {observation.error}")
    return TaskResult(
        job=ctx.job,
        run_id=ctx.run_id,
        item_id=item.id,
        task_id=task.id,
        kind=task.kind,
        status=c.status,
        # An unverified output is kept in `attempts` for review but never presented as the result.
        output=output,
        prompt=c.request.messages[-1].content,
        model=final.draft.model if final else None,
        score=final.verdict.score if final else None,
        reasons=reasons,
        attempts=c.attempts,
        citations=c.evidence,
        cost=ctx.ledger.entry(c.attempts, c.request),
        latency_s=time.perf_counter() - start,
        error=c.error,
    )


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[1, 5], retry_condition_fn=retry_on_exceptions_only)
def run_unit(ctx: UnitContext, task: TaskSpec, item: Item, upstream: dict[str, Any]) -> State:
    result = execute_unit(ctx, task, item, upstream)
    if result.status is Status.accepted:
        return Completed(data=result, message=f"score {result.score:.2f}")
    if result.status is Status.escalated:
        return Completed(data=result, name=ESCALATED, message="; ".join(result.reasons)[:500])
    return Failed(
        data=result,
        name=INPUT_REJECTED if result.status is Status.failed else NEEDS_REVIEW,
        message=(result.error or "; ".join(result.reasons))[:500],
    )
