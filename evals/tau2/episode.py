"""One tau2 episode on slmflow's agent machinery, scored by the benchmark's rule.

The agent is the `agent` task kind's step (flows.agent.execute_step): every tool call is drafted by
the small model, verified, escalated on its own when it fails (cascade mode; never in small-only
mode) and run by the sandboxed executor over a private copy of the domain's db.json. A verified
`final_answer` is the agent's message to the customer. The customer is simulated by the frontier
endpoint, prompted with the task's scenario (evals.tau2.user), until it ends the conversation or
`max_turns` is reached. Score: final DB equals the gold replay's, and the required information
was said (evals.tau2.scoring).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from evals.tau2.db import load_db, prepare_workdir
from evals.tau2.domains import domain_tools, tool_module
from evals.tau2.scoring import Score, score
from evals.tau2.tasks import Task
from evals.tau2.user import is_stop, user_system_prompt
from flows.agent import execute_step, steps_cost
from flows.cascade import UnitContext, Workers
from flows.ledger import Ledger
from flows.spec import AgentLimits, EscalationPolicy, Item, TaskSpec
from slmflow.core.records import AgentStep, GenerationRequest, Message
from tools.effects import EffectLedger
from tools.executor import ToolExecutor
from tools.registry import FINAL_ANSWER, ToolRegistry

Mode = Literal["small", "cascade"]
PROMPT = (
    "You are a customer service agent. Follow the policy.\n\nPolicy:\n{{ item.policy }}\n\n"
    "Conversation so far:\n{{ item.conversation }}\n\nReply to the customer's last message: "
    "call tools as needed, then give your reply as the final answer."
)


class Episode(BaseModel):
    task_id: str
    mode: Mode
    score: Score
    turns: int
    steps: int
    escalated_steps: int
    usd: float


def run_episode(
    task: Task, data_dir: Path, workers: Workers, ledger: Ledger, mode: Mode, max_turns: int = 8, max_steps: int = 4
) -> Episode:
    domain = task.domain
    spec = TaskSpec(
        id="agent",
        kind="agent",
        prompt=PROMPT,
        tools=sorted(domain_tools(domain)),
        agent=AgentLimits(max_steps=max_steps),
        max_tokens=256,
        escalation=EscalationPolicy(frontier_attempts=1 if mode == "cascade" else 0),
    )
    registry = ToolRegistry()
    registry.add_module(tool_module(domain))
    policy = (data_dir / domain / "policy.md").read_text(encoding="utf-8")
    root = Path(tempfile.mkdtemp(prefix=f"tau2-{domain}-{task.id}-"))
    workdir = root / "work"
    prepare_workdir(domain, data_dir, workdir)
    conversation: list[tuple[str, str]] = []
    agent_messages: list[str] = []
    steps: list[AgentStep] = []
    try:
        with ToolExecutor(registry, workdir, EffectLedger(root / "effects.sqlite")) as tools:
            ctx = UnitContext(f"tau2-{domain}", "tau2", workers, ledger, tools=tools)
            customer = _say_as_customer(workers, task, conversation)
            turns = 0
            while not is_stop(customer) and turns < max_turns:
                turns += 1
                conversation.append(("customer", customer))
                reply = _agent_turn(ctx, spec, task, policy, conversation, steps, max_steps)
                if reply is None:
                    break  # a step could not be verified: the episode ends unanswered
                agent_messages.append(reply)
                conversation.append(("agent", reply))
                customer = _say_as_customer(workers, task, conversation)
        final_db = load_db(workdir)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return Episode(
        task_id=task.id,
        mode=mode,
        score=score(task, final_db, agent_messages, data_dir),
        turns=len(agent_messages),
        steps=len(steps),
        escalated_steps=sum(s.role == "frontier" for s in steps),
        usd=steps_cost(steps).usd,
    )


def _agent_turn(
    ctx: UnitContext,
    spec: TaskSpec,
    task: Task,
    policy: str,
    conversation: list[tuple[str, str]],
    steps: list[AgentStep],
    max_steps: int,
) -> str | None:
    item = Item(id=task.id, data={"policy": policy, "conversation": _render(conversation)})
    turn: list[AgentStep] = []
    for _ in range(max_steps):
        step = execute_step(ctx, spec, item, {}, [], turn)
        steps.append(step)
        turn.append(step)
        if not step.status.verified:
            return None
        if step.call is not None and step.call.name == FINAL_ANSWER:
            return str(step.call.arguments.get("answer", ""))
    return None


def _say_as_customer(workers: Workers, task: Task, conversation: list[tuple[str, str]]) -> str:
    """The simulated customer's next message, from the frontier endpoint."""
    messages = [Message(role="system", content=user_system_prompt(task))]
    # The simulator plays the user, so the agent's messages are its "user" turns.
    messages += [Message(role="user" if who == "agent" else "assistant", content=text) for who, text in conversation]
    if len(messages) == 1:
        messages.append(Message(role="user", content="Hi! How can I help you today?"))
    draft = workers.frontier(GenerationRequest(kind="answer", messages=messages, max_tokens=160))
    return draft.text.strip() or "###STOP###"


def _render(conversation: list[tuple[str, str]]) -> str:
    return "\n".join(f"{who}: {text}" for who, text in conversation)
