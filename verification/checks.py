"""Individual checks. Each takes a VerifyRequest and returns one CheckResult; none raises.

Malformed model output is a failed check with a reason, never an exception: the verifier is the
last gate before a result is accepted, so it must not be the thing that crashes.
"""

from __future__ import annotations

import json
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for
from referencing.exceptions import Unresolvable

from slmflow.core.records import CheckResult, VerifyRequest
from verification import grounding
from verification import text as tx
from verification.grounding import Embedder


def finished(req: VerifyRequest) -> CheckResult:
    """A generation cut off by the token limit is unfinished, whatever it says."""
    if req.finish_reason == "length":
        return CheckResult(name="finished", passed=False, score=0.0, reason="output was truncated at the token limit")
    if not req.text.strip():
        return CheckResult(name="finished", passed=False, score=0.0, reason="empty output")
    return CheckResult(name="finished", passed=True, score=1.0)


def valid_choice(req: VerifyRequest) -> CheckResult:
    choices = req.choices or []
    if isinstance(req.output, str) and req.output in choices:
        return CheckResult(name="valid_choice", passed=True, score=1.0)
    return CheckResult(
        name="valid_choice", passed=False, score=0.0, reason=f"{_short(req.output)!r} is not one of {choices}"
    )


def label_fits(req: VerifyRequest) -> CheckResult:
    """The request names the topic of another choice and not the chosen one: `Can I return my
    gift card?` labelled `shipping` when `returns` is a choice. Words of a choice found in the
    request are evidence for it, so a label with none, while another has some, is contradicted by
    the request itself, however confident the model was. Labels that requests do not spell out
    (sentiment, `other`) give no such evidence and are left to the other checks."""
    choices = req.choices or []
    if not isinstance(req.output, str) or req.output not in choices:
        return CheckResult(name="label_fits", passed=True, score=1.0)
    stems = tx.stems(req.question or req.source)
    named = [c for c in choices if _names(c, stems)]
    if not named or req.output in named:
        return CheckResult(name="label_fits", passed=True, score=1.0)
    return CheckResult(
        name="label_fits",
        passed=False,
        score=0.0,
        reason=f"the request speaks of {', '.join(repr(c) for c in named[:3])}, not of {req.output!r}",
    )


def _names(choice: str, stems: set[str]) -> bool:
    """A word of the label in the text, by stem or by its first five letters (`devices`/`device`)."""
    prefixes = {s[:5] for s in stems if len(s) >= 5}
    return any(w in stems or (len(w) >= 5 and w[:5] in prefixes) for w in tx.stems(choice.replace("_", " ")))


def confident(req: VerifyRequest, threshold: float) -> CheckResult:
    """The model's own token probability. Not self-critique: it is read off the forward pass,
    and a classifier that hesitates between labels is the case worth a second opinion."""
    if req.confidence is None:
        return CheckResult(name="confidence", passed=True, score=1.0, reason="engine reported no log-probabilities")
    passed = req.confidence >= threshold
    return CheckResult(
        name="confidence",
        passed=passed,
        score=round(req.confidence, 4),
        reason="" if passed else f"{req.confidence:.2f} < {threshold:.2f}",
    )


def matches_schema(req: VerifyRequest) -> CheckResult:
    if req.output is None:
        return CheckResult(name="schema", passed=False, score=0.0, reason=f"output is not JSON: {_short(req.text)!r}")
    schema = req.json_schema or {}
    try:
        cls = validator_for(schema, default=Draft202012Validator)
        cls.check_schema(schema)
        errors = sorted(cls(schema).iter_errors(req.output), key=lambda e: list(e.path))
    except (SchemaError, Unresolvable, TypeError, ValueError) as exc:
        return CheckResult(
            name="schema", passed=False, score=0.0, reason=f"the task's schema is invalid: {_short(str(exc), 80)}"
        )
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.path) or "(root)"
        return CheckResult(name="schema", passed=False, score=0.0, reason=f"{where}: {first.message}")
    return CheckResult(name="schema", passed=True, score=1.0)


def values_grounded(req: VerifyRequest, threshold: float) -> CheckResult:
    """Extracted free-text values must appear in the request or the evidence. Values fixed by an
    enum in the schema are choices, not copies, and are not checked."""
    support = tx.normalise(req.source + " " + " ".join(e.text for e in req.evidence))
    values = list(_free_values(req.output, req.json_schema or {}))
    if not values:
        return CheckResult(name="grounded_values", passed=True, score=1.0)
    missing = [v for v in values if tx.normalise(v) not in support]
    score = 1 - len(missing) / len(values)
    passed = score >= threshold
    reason = "" if passed else f"not found in the request or evidence: {missing[:3]}"
    return CheckResult(name="grounded_values", passed=passed, score=round(score, 4), reason=reason)


def supported_by_evidence(
    req: VerifyRequest, threshold: float, embedder: Embedder | None = None, min_semantic: float = 0.35
) -> list[CheckResult]:
    """Two checks on a free-text answer (`verification.grounding`): `grounding`, that the evidence
    contradicts no claim sentence (negation, opposite, another number for the same thing) and every
    citation exists; and `support`, that each claim sentence is covered by the evidence, with its
    numbers, dates and names found there. Reasons name the first sentences that fail."""
    if not req.evidence:
        return [CheckResult(name="grounding", passed=False, score=0.0, reason="no evidence retrieved")]
    a = grounding.analyse(req.text, req.evidence, req.source, embedder)
    if not a.sentences:
        if a.abstained:
            return [CheckResult(name="grounding", passed=True, score=1.0, reason="answer declines")]
        return [CheckResult(name="grounding", passed=False, score=0.0, reason="no claim to check")]
    conflicts = a.conflicts
    contradicted = CheckResult(
        name="grounding", passed=not conflicts, score=0.0 if conflicts else 1.0, reason="; ".join(conflicts[:3])
    )
    found = [p for s in a.sentences if not s.conflict and (p := s.problem(threshold, min_semantic))]
    # The weakest sentence decides: one unsupported claim is not averaged away by others.
    score = min(0.0 if s.problem(threshold, min_semantic) else s.coverage for s in a.sentences)
    support = CheckResult(name="support", passed=not found, score=round(score, 4), reason="; ".join(found[:3]))
    return [contradicted, support]


def _free_values(value: Any, schema: dict[str, Any]):
    if isinstance(value, dict):
        props = schema.get("properties", {}) if isinstance(schema, dict) else {}
        for k, v in value.items():
            yield from _free_values(v, props.get(k, {}))
    elif isinstance(value, list):
        items = schema.get("items", {}) if isinstance(schema, dict) else {}
        for v in value:
            yield from _free_values(v, items)
    elif isinstance(value, str) and value.strip():
        if not (isinstance(schema, dict) and ("enum" in schema or "const" in schema)):
            yield value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield json.dumps(value)


def _short(value: Any, n: int = 40) -> str:
    s = value if isinstance(value, str) else json.dumps(value, default=str)
    return s if len(s) <= n else s[: n - 1] + "…"
