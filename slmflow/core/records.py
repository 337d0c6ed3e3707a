"""Typed records that cross role boundaries (flow <-> workers <-> verification <-> retrieval).

This module imports none of the roles, so every role may import it.
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, Field

TaskKind = Literal["classify", "extract", "answer", "tool_call", "agent"]
# What the verifier can judge: the flow's task kinds plus worked math, tool calls and
# "reasoning", a chain of thought on a self-contained puzzle (sorting, brackets, deduction).
VerifyKind = Literal["classify", "extract", "answer", "math", "tool_call", "reasoning"]


class Message(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class Evidence(BaseModel):
    """One retrieved chunk. Travels into the prompt, the verifier and the result as a citation."""

    chunk_id: str
    doc_id: str
    text: str
    score: float
    collection: str


class GenerationRequest(BaseModel):
    """What an engine is asked to do. The same request goes to the small model and the frontier."""

    kind: TaskKind
    messages: list[Message]
    choices: list[str] | None = None
    json_schema: dict[str, Any] | None = None
    # tool_call: the offered tools, OpenAI style. The small model is constrained to call exactly
    # one of them; the frontier gets them through the `tools` API.
    tools: list[dict[str, Any]] | None = None
    max_tokens: int = 256
    temperature: float = 0.0


class Draft(BaseModel):
    """An engine's answer, with what it cost to produce."""

    model: str
    text: str
    # str for classify/answer, parsed JSON for extract, {"name", "arguments"} for tool_call
    # (None if unparseable)
    output: Any
    tokens_in: int
    tokens_out: int
    latency_s: float
    finish_reason: str | None = None
    # Geometric-mean probability of the generated tokens under the model; None if unavailable.
    confidence: float | None = None
    # A fleet engine's drafts: the engine seconds this request used (its share of the replica's busy
    # time, shared with the requests batched alongside it) and what the replica's hardware costs
    # per hour. None for drafts priced by tokens (frontier, endpoints). docs/costs.md.
    engine_s: float | None = None
    usd_per_hour: float | None = None


class CheckResult(BaseModel):
    name: str
    passed: bool
    score: float = Field(ge=0, le=1)
    reason: str = ""


class Verdict(BaseModel):
    accept: bool
    score: float = Field(ge=0, le=1)
    checks: list[CheckResult]

    @property
    def reasons(self) -> list[str]:
        return [f"{c.name}: {c.reason}" for c in self.checks if not c.passed]


class Status(str, Enum):
    accepted = "accepted"  # small model's answer passed verification
    escalated = "escalated"  # frontier's answer passed verification
    needs_review = "needs_review"  # nothing passed verification (or escalation was not possible)
    failed = "failed"  # infrastructure error after retries
    blocked = "blocked"  # an upstream task did not produce a verified output
    # Only a person's decision on a needs_review unit ends in these (flows.review):
    approved = "approved"  # a reviewer approved a draft or entered the answer: verified by a person
    rejected = "rejected"  # a reviewer rejected it, with a reason: final, never retried

    @property
    def verified(self) -> bool:
        return self in (Status.accepted, Status.escalated, Status.approved)


class Attempt(BaseModel):
    role: Literal["small", "frontier"]
    draft: Draft
    verdict: Verdict


class CostEntry(BaseModel):
    """What a task cost, against what the same prompt would have cost on the frontier alone."""

    tokens_in: int = 0
    tokens_out: int = 0
    usd: float = 0.0
    counterfactual_usd: float = 0.0
    frontier_usd: float = 0.0  # the part of `usd` spent on the frontier
    unpriced: list[str] = Field(default_factory=list)  # models counted at 0 because they are unpriced on purpose


class ToolCall(BaseModel):
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class Observation(BaseModel):
    """What running a tool produced. A tool's failure is an observation too, never an exception
    that reaches the flow."""

    tool: str
    ok: bool
    content: Any = None  # the tool's JSON-able return value
    error: str | None = None
    duration_s: float = 0.0
    # A side-effecting call already made for this item: its recorded observation, not a new run.
    replayed: bool = False

    def text(self, limit: int = 2000) -> str:
        """The observation as the next prompt shows it."""
        body = json.dumps(self.content, default=str) if self.ok else f"ERROR: {self.error}"
        return body if len(body) <= limit else body[: limit - 1] + "…"


class AgentStep(BaseModel):
    """One step of an agent loop: a verified call (or the final answer) and what it returned."""

    n: int
    role: Literal["small", "frontier"] | None = None  # who wrote the accepted call
    status: Status
    call: ToolCall | None = None
    observation: Observation | None = None
    attempts: list[Attempt] = Field(default_factory=list)
    error: str | None = None  # why an unverified step has no call (input rejected, budget, frontier down)
    cost: CostEntry = CostEntry()  # this step's attempts, against its own request on the frontier


ReviewAction = Literal["approve-small", "approve-frontier", "correct", "reject"]


class Review(BaseModel):
    """A person's decision on a needs_review unit: who, when, what. A result carrying one supersedes
    the unit's earlier record in the results file (which stays, as the record of what the run did)."""

    id: str  # the review's Prefect flow run id
    action: ReviewAction
    reviewer: str
    decided_at: datetime
    reason: str = ""
    # The verifier rejected what the reviewer approved: a false rejection (approve-*), or it was
    # right (correct, reject). What `slmflow history` reports as overturned.
    overturned: bool = False


class TaskResult(BaseModel):
    """One record per (item, task): the unit that results, artifacts and history are built from.
    A results file may hold later records for the same unit (a review decided it, or a downstream
    unit ran after one): the last record of a unit is its result."""

    job: str
    run_id: str
    item_id: str
    task_id: str
    kind: TaskKind
    status: Status
    output: Any = None
    prompt: str | None = None  # the request as sent (user message), for review and verifier labels
    model: str | None = None
    score: float | None = None
    reasons: list[str] = Field(default_factory=list)
    attempts: list[Attempt] = Field(default_factory=list)
    citations: list[Evidence] = Field(default_factory=list)
    cost: CostEntry = CostEntry()
    latency_s: float = 0.0
    error: str | None = None
    # Agent tasks: every step, in order (attempts holds them all too).
    steps: list[AgentStep] = Field(default_factory=list)
    review: Review | None = None  # set on the record a review decision wrote

    def __repr__(self) -> str:
        # Prefect logs a state's result on every state change; keep that line readable.
        return f"TaskResult({self.item_id}/{self.task_id}: {self.status.value})"

    @property
    def key(self) -> str:
        """Idempotency key: exactly one result per item x task in a run."""
        return f"{self.item_id}::{self.task_id}"


class VerifyRequest(BaseModel):
    """Everything the verifier may look at. It never sees which model wrote the answer."""

    kind: VerifyKind
    source: str  # the request as the model saw it (item text, rendered prompt)
    text: str  # raw model output
    output: Any  # parsed output
    finish_reason: str | None = None
    confidence: float | None = None
    evidence: list[Evidence] = Field(default_factory=list)
    choices: list[str] | None = None
    json_schema: dict[str, Any] | None = None
    # Per-task threshold overrides; None falls back to the verifier's defaults.
    min_confidence: float | None = None
    min_grounded: float | None = None
    min_support: float | None = None
    # The bare question when `source` is a rendered prompt (math: the problem statement).
    question: str | None = None
    # tool_call: the function specs offered to the model (OpenAI or BFCL style). A call to a name
    # not among them is rejected, which is what holds a task to its allowlist.
    tools: list[dict[str, Any]] | None = None
    # tool_call in a flow: argument values must be grounded in `source` (min_grounded share).
    grounded_arguments: bool = False
    # Answers to the same request by other fleet members (other small models, or samples), as
    # raw text: their agreement with `text` is evidence for it (`verification.agreement`).
    alternatives: list[str] = Field(default_factory=list)
