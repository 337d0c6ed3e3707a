"""Turn a task, an item, upstream outputs and evidence into the request both engines receive."""

from __future__ import annotations

import json
from typing import Any

from flows.spec import TaskSpec
from flows.templates import render
from slmflow.core.records import Evidence, GenerationRequest, Message
from tools.registry import Tool, call_schema

_INSTRUCTIONS = {
    "classify": "Classify the request. Reply with exactly one of: {choices}.",
    "extract": "Extract the requested fields as JSON matching this schema, copying values "
    "verbatim from the text; use null when a value is absent.\nSchema: {schema}",
    "answer": "Answer using only the numbered context passages. Copy facts exactly as written "
    "and cite passages like [1]. If the context does not contain the answer, say so.",
    "tool_call": "Call the one tool that does what the request asks, as JSON "
    '{{"name": ..., "arguments": {{...}}}}. Copy argument values exactly from the request '
    "or the context. If no tool fits, call no_suitable_tool.\nTools:\n{tools}",
    "agent": "Work in steps. Each step calls one tool, as JSON "
    '{{"name": ..., "arguments": {{...}}}}; you then see what it returned. Copy argument values '
    "exactly from the request or from earlier tool results. When you can answer the request, "
    "call final_answer with the answer, using only what the tools returned.\nTools:\n{tools}",
}


def search_query(task: TaskSpec, item: dict[str, Any], upstream: dict[str, Any]) -> str:
    template = task.grounding.query if task.grounding and task.grounding.query else task.prompt
    return render(template, item=item, upstream=upstream, evidence=[])


def build_request(
    task: TaskSpec,
    item: dict[str, Any],
    upstream: dict[str, Any],
    evidence: list[Evidence],
    tools: list[Tool] | None = None,
    transcript: str = "",
) -> GenerationRequest:
    """`tools`: what a tool_call/agent step may call, pseudo-tools included; `transcript`: an
    agent's earlier steps and what they returned."""
    body = render(task.prompt, item=item, upstream=upstream, evidence=evidence)
    if evidence and "evidence" not in task.prompt:
        context = "\n".join(f"[{i}] {e.text}" for i, e in enumerate(evidence, 1))
        body = f"Context:\n{context}\n\n{body}"
    if transcript:
        body = f"{body}\n\nSteps so far:\n{transcript}"
    instruction = _INSTRUCTIONS[task.kind].format(
        choices=", ".join(task.choices or []),
        schema=json.dumps(task.schema_),
        tools="\n".join(_describe(t) for t in tools or []),
    )
    system = render(task.system, item=item, upstream=upstream, evidence=evidence) if task.system else None
    messages = [
        Message(role="system", content=f"{system}\n{instruction}" if system else instruction),
        Message(role="user", content=body),
    ]
    if tools is not None:
        # Both tool kinds ask for one call per request; an agent's loop is a sequence of them.
        return GenerationRequest(
            kind="tool_call",
            messages=messages,
            tools=[t.openai() for t in tools],
            json_schema=call_schema(tools),
            max_tokens=task.max_tokens,
        )
    return GenerationRequest(
        kind=task.kind, messages=messages, choices=task.choices, json_schema=task.schema_, max_tokens=task.max_tokens
    )


def _describe(tool: Tool) -> str:
    """One line per tool: the small model's chat template has no slot for tools, so they are text."""
    return f"- {tool.name}: {tool.description} Arguments: {json.dumps(tool.parameters.get('properties', {}))}"


def with_feedback(request: GenerationRequest, reasons: list[str]) -> GenerationRequest:
    """The escalated request: the same task, plus what the verifier rejected in the first draft
    (not the draft itself, so the frontier is not anchored on a wrong answer)."""
    # The learned score is a number, not a problem the frontier can avoid.
    reasons = [r for r in reasons if not r.startswith("learned:")]
    if not reasons:
        return request
    note = (
        "A previous draft of this answer was rejected by an automatic verifier because:\n"
        + "\n".join(f"- {r}" for r in reasons)
        + "\nAvoid these problems."
    )
    last = request.messages[-1]
    messages = [*request.messages[:-1], Message(role=last.role, content=f"{last.content}\n\n{note}")]
    return request.model_copy(update={"messages": messages})
