"""A reviewer's decision on a needs_review unit: the form the Prefect UI shows for it, the check every
decision passes (from the UI or `slmflow review decide`), what the decision makes of the unit, and
the verifier labels it teaches.

The form is a Prefect `RunInput` whose JSON schema carries the task's contract: the choices of a
classify task, the JSON Schema of an extract task, the offered tools' argument schemas of a tool
call. Which decisions it offers depends on the drafts: a draft that breaks the contract (an
unparseable extract, a label outside the choices) cannot be approved, only corrected. The Prefect
server validates a submitted decision against that schema before it resumes the review, and
`check_decision` applies the same validation (Prefect's own validator) on this side, so a terminal
user gets the same answer as the UI.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

from jsonschema.validators import validator_for
from prefect.input import RunInput
from prefect.utilities.schema_tools import ValidationError as SchemaValidationError
from prefect.utilities.schema_tools import validate
from pydantic import ConfigDict

from flows.spec import Item, TaskSpec
from slmflow.core.records import Attempt, Review, ReviewAction, Status, TaskResult
from tools.registry import NO_TOOL, Tool, call_schema

ACTIONS: dict[ReviewAction, str] = {
    "approve-small": "the small model's draft is right",
    "approve-frontier": "the frontier's draft is right",
    "correct": "both are wrong: enter the answer",
    "reject": "no answer can be given: say why",
}
REVIEWER_ANSWER = "reviewer"  # the `model` of a result whose output a reviewer wrote


class DecisionError(ValueError):
    """A decision the unit's form refuses. The message names the job, task, item and field."""


class Decision(RunInput):
    """What a reviewer sends. Each review's form narrows it (see `form_schema`)."""

    decision: ReviewAction
    answer: Any = None
    reason: str | None = None
    reviewer: str


def drafts(result: TaskResult) -> dict[str, Attempt]:
    """The last draft of each role, as the reviewer sees them."""
    last: dict[str, Attempt] = {}
    for attempt in result.attempts:
        last[attempt.role] = attempt
    return last


def contract_schema(task: TaskSpec, tools: list[Tool] | None) -> dict[str, Any]:
    """The JSON schema an answer to `task` must meet: what a verified result's output is held to.
    `tools`: what a tool_call task offered (its allowlist and `no_suitable_tool`)."""
    if task.kind == "classify":
        return {"type": "string", "enum": list(task.choices or [])}
    if task.kind == "extract":
        return _titled(copy.deepcopy(task.schema_ or {"type": "object"}))
    if task.kind == "tool_call":
        if tools:
            return call_schema(tools)
        return {  # tools not known here (an MCP server's): their names, the executor checks the rest
            "type": "object",
            "required": ["name", "arguments"],
            "properties": {"name": {"enum": [*(task.tools or []), NO_TOOL]}, "arguments": {"type": "object"}},
        }
    # answer: grounded text; agent: the final answer of the episode.
    return {"type": "string", "minLength": 1}


def _titled(schema: Any) -> Any:
    """Each property titled by its name: the UI labels a form field by its title, else its type."""
    if isinstance(schema, dict):
        for name, sub in (schema.get("properties") or {}).items():
            if isinstance(sub, dict):
                sub.setdefault("title", name)
        for value in schema.values():
            _titled(value)
    elif isinstance(schema, list):
        for value in schema:
            _titled(value)
    return schema


def meets(contract: dict[str, Any], output: Any) -> str | None:
    """Why `output` breaks the contract, or None when it meets it."""
    validator = validator_for(contract)(contract)
    error = next(iter(sorted(validator.iter_errors(output), key=lambda e: e.path)), None)
    return None if error is None else error.message


def form_schema(task: TaskSpec, result: TaskResult, tools: list[Tool] | None) -> dict[str, Any]:
    """The decision form of one review: the actions open to it, the answer typed by the contract,
    and the rules a decision must keep (an answer to correct, a reason to reject)."""
    contract = contract_schema(task, tools)
    actions: list[ReviewAction] = []
    if task.kind != "agent":  # an episode's drafts are steps, not answers: correct or reject it
        for role, attempt in drafts(result).items():
            if meets(contract, attempt.draft.output) is None:
                actions.append("approve-small" if role == "small" else "approve-frontier")
    actions += ["correct", "reject"]
    actions.sort(key=list(ACTIONS).index)
    return {
        "title": "Decision",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "decision": {
                "title": "Decision",
                "type": "string",
                "enum": actions,
                "description": "; ".join(f"{a}: {ACTIONS[a]}" for a in actions),
            },
            "answer": {**contract, "title": "Answer", "description": f"to correct: the {task.kind} answer"},
            "reason": {"title": "Reason", "type": "string", "description": "why (required to reject)"},
            "reviewer": {"title": "Reviewer", "type": "string", "minLength": 1, "description": "your name"},
        },
        "required": ["decision", "reviewer"],
        "allOf": [
            {"if": {"properties": {"decision": {"const": "correct"}}}, "then": {"required": ["answer"]}},
            {
                "if": {"properties": {"decision": {"const": "reject"}}},
                "then": {"required": ["reason"], "properties": {"reason": {"type": "string", "minLength": 1}}},
            },
        ],
    }


def decision_form(schema: dict[str, Any], description: str) -> type[Decision]:
    """A `Decision` whose saved schema is `schema` and whose Resume dialog shows `description`."""

    def replace(generated: dict[str, Any]) -> None:
        generated.clear()
        generated.update(copy.deepcopy(schema))

    class Form(Decision):
        model_config = ConfigDict(extra="forbid", json_schema_extra=replace)

    Form.__name__ = "Decision"
    Form._description = description
    return Form


def check_decision(raw: dict[str, Any], schema: dict[str, Any], where: str) -> Decision:
    """`raw` as the Prefect server will judge it against the review's form; `where` names the unit
    ("job 'j', task 't', item 'i'") in the error."""
    clean = {k: v for k, v in raw.items() if v is not None}
    try:
        validate(clean, schema, raise_on_error=True)
    except SchemaValidationError as exc:
        raise DecisionError(f"{where}: {exc}") from None
    return Decision.model_validate(clean)


def decided_result(
    result: TaskResult, decision: Decision, review_id: str, output: Any, decided_at: datetime | None = None
) -> TaskResult:
    """The unit's new record: `output` is what the decision makes its result (for a tool call, the
    call with what running it returned); a rejection has none. Attempts, citations and cost stay:
    they are what the run did."""
    rejected = decision.decision == "reject"
    model = {
        "approve-small": drafts(result).get("small"),
        "approve-frontier": drafts(result).get("frontier"),
    }.get(decision.decision)
    review = Review(
        id=review_id,
        action=decision.decision,
        reviewer=decision.reviewer,
        decided_at=decided_at or datetime.now(UTC),
        reason=decision.reason or "",
        overturned=decision.decision.startswith("approve-"),
    )
    return result.model_copy(
        update={
            "status": Status.rejected if rejected else Status.approved,
            "output": None if rejected else output,
            "model": model.draft.model if model else (None if rejected else REVIEWER_ANSWER),
            "error": f"rejected by {decision.reviewer}: {decision.reason}" if rejected else None,
            "review": review,
        }
    )


def answer_of(result: TaskResult, decision: Decision) -> Any:
    """The answer a decision picks: a draft's output, or the reviewer's own (None to reject)."""
    if decision.decision == "correct":
        return decision.answer
    if decision.decision == "reject":
        return None
    return drafts(result)[decision.decision.removeprefix("approve-")].draft.output


def decision_labels(before: TaskResult, after: TaskResult, answer: Any) -> list[dict[str, Any]]:
    """What a decision teaches the verifier: each draft the reviewer judged, labelled right or wrong,
    and a corrected answer labelled right. Appended to `<results_dir>/labels.jsonl` next to the
    escalation labels; `slmflow verifier train --from-history` and `verifier calibrate
    --from-history` read them (verification.history)."""
    review = after.review
    assert review is not None
    common = {
        "source": "review",
        "job": before.job,
        "run_id": before.run_id,
        "item_id": before.item_id,
        "task_id": before.task_id,
        "kind": before.kind,
        "question": before.prompt,
        "review_id": review.id,
        "action": review.action,
        "reviewer": review.reviewer,
        "decided_at": review.decided_at.isoformat(),
    }
    rows = []
    for role, attempt in drafts(before).items():
        output = attempt.draft.output
        rows.append({**common, "role": role, "answer": output, "correct": answer is not None and _same(output, answer)})
    if review.action == "correct":
        rows.append({**common, "role": REVIEWER_ANSWER, "answer": answer, "correct": True})
    return rows


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def where(job: str, task: str, item: str) -> str:
    return f"job '{job}', task '{task}', item '{item}'"


def review_markdown(task: TaskSpec, item: Item, result: TaskResult, schema: dict[str, Any]) -> str:
    """The Resume dialog's text: the item, the task, the evidence with citations, the drafts and
    the verifier's reasons, then what a decision may be."""
    lines = [
        f"### {task.id}[{item.id}] needs review",
        f"Job **{result.job}**, run `{result.run_id}`; task `{task.id}` ({task.kind}).",
        "",
        "**Item**",
        "",
        _code(item.data),
        "",
        "**Request sent to the models**",
        "",
        _quote(result.prompt or ""),
    ]
    if result.citations:
        lines += ["", "**Evidence**", ""]
        lines += [
            f"{i}. `{e.doc_id}` ({e.chunk_id}, score {e.score:.2f}): {_clip(e.text, 400)}"
            for i, e in enumerate(result.citations, 1)
        ]
    for role, attempt in drafts(result).items():
        lines += ["", f"**{role.capitalize()} draft** ({attempt.draft.model}, score {attempt.verdict.score:.2f})", ""]
        lines.append(_code(attempt.draft.output if attempt.draft.output is not None else attempt.draft.text))
        lines += [f"- verifier: {r}" for r in attempt.verdict.reasons] or ["- verifier: no failed check"]
    if result.error:
        lines += ["", f"**Why it was not escalated further:** {result.error}"]
    contract = schema["properties"]["answer"]
    lines += [
        "",
        "**Decide:** " + "; ".join(f"`{a}` ({ACTIONS[a]})" for a in schema["properties"]["decision"]["enum"]),
        "",
        f"An answer must meet the task's contract: {_contract_text(contract)}.",
    ]
    return "\n".join(lines)


def _contract_text(contract: dict[str, Any]) -> str:
    if "enum" in contract:
        return "one of " + ", ".join(f"`{c}`" for c in contract["enum"])
    if "anyOf" in contract:
        names = [v["properties"]["name"]["const"] for v in contract["anyOf"]]
        return "a call to one of " + ", ".join(f"`{n}`" for n in names) + " with valid arguments"
    if contract.get("type") == "object":
        return "an object matching the task's JSON Schema (fields: " + ", ".join(contract.get("properties", {})) + ")"
    return "a non-empty text"


def _code(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, indent=1, ensure_ascii=False, default=str)
    return f"```\n{_clip(text, 2000)}\n```"


def _quote(text: str) -> str:
    return "\n".join(f"> {line}" for line in _clip(text, 2000).splitlines()) or "> (empty)"


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
