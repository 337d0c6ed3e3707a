"""The cascade for one request: draft on a small model -> verify -> (retry small with more evidence)
-> escalate to the frontier -> verify again. Shared by plain units (`flows.unit`) and agent steps
(`flows.agent`).

Plain functions over a `UnitContext`, whose workers are anything with the `Workers` methods: the
fleet's Ray actors in a run (`workers.remote.RayWorkers`), plain fakes in tests. No Prefect here
except the state names the tasks end in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from flows.budget import Budget
from flows.cache import UnitCache
from flows.ledger import Ledger
from flows.prompts import search_query, with_feedback
from flows.spec import Item, TaskSpec
from slmflow.core.errors import EngineOutputError, FrontierError
from slmflow.core.records import (
    Attempt,
    Draft,
    Evidence,
    GenerationRequest,
    Observation,
    Status,
    ToolCall,
    Verdict,
    VerifyRequest,
)
from tools.executor import ToolExecutor
from tools.registry import FINAL_ANSWER, NO_TOOL, RESERVED, Tool, pseudo_tool
from verification.independent import with_alternatives


class Workers(Protocol):
    """What a unit needs from the fleet. `workers.remote.RayWorkers` provides it through Ray; tests may
    provide plain callables."""

    def search(self, collection: str, query: str, k: int) -> list[Evidence]: ...
    def small(self, request: GenerationRequest) -> Draft: ...
    def frontier(self, request: GenerationRequest) -> Draft: ...
    def verify(self, request: VerifyRequest) -> Verdict: ...


class UnitContext:
    """Per-run state shared by every unit of the run (not a Prefect parameter)."""

    def __init__(
        self,
        job: str,
        run_id: str,
        workers: Workers,
        ledger: Ledger,
        budget: Budget | None = None,
        cache: UnitCache | None = None,
        tools: ToolExecutor | None = None,
        step_task_runs: bool = True,
        retries: int = 2,
        threads: int = 32,
        alternatives: tuple[int, float] = (0, 0.0),
    ):
        self.job = job
        self.run_id = run_id
        self.workers = workers
        self.ledger = ledger
        self.budget = budget or Budget()
        self.cache = cache
        self.tools = tools
        # Agent steps as their own Prefect task runs (a unit per task run), or as plain calls retried
        # the same way (a batch: one task run for many units).
        self.step_task_runs = step_task_runs
        self.retries = retries
        self.threads = threads  # units in flight per batch (the batches in flight share their threads)
        # (how many, temperature): the small model's alternatives to each small draft, compared
        # with it by the verifier (VerifierSettings.alternatives; 0 = off).
        self.alternatives = alternatives

    def offered(self, task: TaskSpec, pseudo: str) -> list[Tool] | None:
        """What a tool task's model may call: its allowlist plus `pseudo` (declining or
        finishing); None for the other kinds."""
        if not task.tools:
            return None
        if self.tools is None:
            raise RuntimeError(f"task {task.id!r} uses tools, but the run opened none")
        return [*self.tools.registry.select(task.tools), pseudo_tool(pseudo)]

    def run_tool(self, task: TaskSpec, item: Item, call: ToolCall) -> Observation:
        """Run a verified call of `task` for `item` through the run's executor (allowlist, sandbox,
        side-effect ledger keyed by `scope`)."""
        if self.tools is None or not task.tools:
            raise RuntimeError(f"task {task.id!r} calls {call.name!r}, but the run opened no tools for it")
        return self.tools.call(call, task.tools, scope(self, item, task))


def verify_request(
    task: TaskSpec, request: GenerationRequest, draft: Draft, evidence: list[Evidence], question: str | None = None
) -> VerifyRequest:
    """`question`: the bare request when the prompt also carries an agent's transcript, so that
    which tool fits is judged on the request and argument values on everything."""
    source = request.messages[-1].content
    common = dict(
        source=source,
        text=draft.text,
        finish_reason=draft.finish_reason,
        confidence=draft.confidence,
        evidence=evidence,
        min_confidence=task.verify.min_confidence,
        min_grounded=task.verify.min_grounded,
        min_support=task.verify.min_support,
    )
    if request.tools is None:
        return VerifyRequest(
            kind=task.kind, output=draft.output, choices=task.choices, json_schema=task.schema_, **common
        )
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
        return VerifyRequest(**{**common, "kind": "answer", "text": answer, "output": answer, "min_support": support})
    offered = [t for t in request.tools if t["function"]["name"] not in RESERVED]
    # Declining is an empty call list; a call outside `offered` fails the schema check.
    output = (
        []
        if call is not None and call.name == NO_TOOL and NO_TOOL in names
        else (call.model_dump() if call is not None else draft.output)
    )
    return VerifyRequest(
        kind="tool_call", output=output, tools=offered, grounded_arguments=True, question=question, **common
    )


def verified_call(c: Cascade) -> ToolCall:
    """The call a verified tool step made: the verifier rejects anything that does not parse as one."""
    call = as_call(c.final.draft.output) if c.final else None
    if call is None or not c.status.verified:
        raise ValueError(f"no verified call in a {c.status.value} cascade")
    return call


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


def cascade(
    ctx: UnitContext,
    task: TaskSpec,
    request: GenerationRequest,
    evidence: list[Evidence],
    reground: Callable[[], tuple[GenerationRequest, list[Evidence]]] | None = None,
    question: str | None = None,
) -> Cascade:
    """Small model first; if its draft fails verification, optionally once more with more evidence
    (`reground`), then the frontier per the task's escalation policy and the run's budget. Each
    draft is verified the same way, whoever wrote it."""
    w, policy = ctx.workers, task.escalation
    c = Cascade(Status.needs_review, [], request, evidence)

    def attempt(role: str, req: GenerationRequest, sent: GenerationRequest | None = None) -> Attempt:
        """Verified against `req`, even when `sent` (with the verifier's feedback) went out:
        the feedback quotes the rejected values, which must not ground the next draft."""
        draft = w.small(sent or req) if role == "small" else w.frontier(sent or req)
        checked = verify_request(task, req, draft, c.evidence, question)
        if role == "small" and ctx.alternatives[0]:
            checked = with_alternatives(checked, w.small, *ctx.alternatives)
        verdict = w.verify(checked)
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
        estimate = ctx.ledger.frontier_estimate(c.request)
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
