"""Individual checks. Each takes a VerifyRequest and returns one CheckResult; none raises.

Malformed model output is a failed check with a reason, never an exception: the verifier is the
last gate before a result is accepted, so it must not be the thing that crashes.
"""

from __future__ import annotations

import json
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.validators import validator_for

from slmflow.records import CheckResult, VerifyRequest
from verification import text as tx


def finished(req: VerifyRequest) -> CheckResult:
    """A generation cut off by the token limit is unfinished, whatever it says."""
    if req.finish_reason == "length":
        return CheckResult(name="finished", passed=False, score=0.0,
                           reason="output was truncated at the token limit")
    if not req.text.strip():
        return CheckResult(name="finished", passed=False, score=0.0, reason="empty output")
    return CheckResult(name="finished", passed=True, score=1.0)


def valid_choice(req: VerifyRequest) -> CheckResult:
    choices = req.choices or []
    if isinstance(req.output, str) and req.output in choices:
        return CheckResult(name="valid_choice", passed=True, score=1.0)
    return CheckResult(name="valid_choice", passed=False, score=0.0,
                       reason=f"{_short(req.output)!r} is not one of {choices}")


def confident(req: VerifyRequest, threshold: float) -> CheckResult:
    """The model's own token probability. Not self-critique: it is read off the forward pass,
    and a classifier that hesitates between labels is the case worth a second opinion."""
    if req.confidence is None:
        return CheckResult(name="confidence", passed=True, score=1.0,
                           reason="engine reported no log-probabilities")
    passed = req.confidence >= threshold
    return CheckResult(name="confidence", passed=passed, score=round(req.confidence, 4),
                       reason="" if passed else f"{req.confidence:.2f} < {threshold:.2f}")


def matches_schema(req: VerifyRequest) -> CheckResult:
    if req.output is None:
        return CheckResult(name="schema", passed=False, score=0.0,
                           reason=f"output is not JSON: {_short(req.text)!r}")
    schema = req.json_schema or {}
    validator = validator_for(schema, default=Draft202012Validator)(schema)
    errors = sorted(validator.iter_errors(req.output), key=lambda e: list(e.path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.path) or "(root)"
        return CheckResult(name="schema", passed=False, score=0.0,
                           reason=f"{where}: {first.message}")
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


def supported_by_evidence(req: VerifyRequest, threshold: float) -> CheckResult:
    """Each sentence's content words must be found in the evidence or the request, and its numbers
    and names must appear there verbatim: similarity alone rates 'written in Java' as high as
    'written in Rust'."""
    if not req.evidence:
        return CheckResult(name="grounding", passed=False, score=0.0, reason="no evidence retrieved")
    support_text = req.source + "\n" + "\n".join(e.text for e in req.evidence)
    support_tokens = tx.content_tokens(support_text)
    support_numbers = tx.numbers(support_text)
    support_names = tx.content_tokens(support_text)
    per_sentence, problems = [], []
    for sent in tx.sentences(req.text):
        tokens = tx.content_tokens(sent)
        if not tokens:
            continue
        coverage = len(tokens & support_tokens) / len(tokens)
        bad_numbers = tx.numbers(sent) - support_numbers
        bad_names = tx.names(sent) - support_names
        if bad_numbers or bad_names:
            coverage = 0.0
            problems.append(f"{_short(sent, 60)!r} uses {sorted(bad_numbers | bad_names)[:3]} "
                            "found in no evidence")
        elif coverage < threshold:
            problems.append(f"{_short(sent, 60)!r} is {coverage:.0%} supported")
        per_sentence.append(coverage)
    if not per_sentence:
        return CheckResult(name="grounding", passed=False, score=0.0, reason="no claim to check")
    bad_citations = {i for i in tx.cited_indices(req.text) if not 1 <= i <= len(req.evidence)}
    if bad_citations:
        problems.append(f"cites missing evidence {sorted(bad_citations)}")
    score = sum(per_sentence) / len(per_sentence)
    passed = not problems
    return CheckResult(name="grounding", passed=passed, score=round(score, 4),
                       reason="; ".join(problems[:3]))


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
