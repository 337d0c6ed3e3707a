"""The line format of `slmflow verify`: one question and answer per JSON line, in and out.

Input:  {"id", "kind", "question", "answer", "evidence"?, "schema"?, "choices"?, "tools"?, "alternatives"?}
        (plus "label": bool, correct or not, for labelled data used to calibrate)
        "alternatives": answers to the same question by other models or samples, raw text
        in the same form as "answer"; their agreement with it is evidence (docs/verifier.md).
Output: {"id", "accept", "score", "reasons"}, in input order; score estimates P(correct) (for
        answers, the learned model's calibrated estimate; otherwise a 0..1 rule score).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from slmflow.core.records import Evidence, Verdict, VerifyKind, VerifyRequest


class InputError(ValueError):
    """A line that is not a valid verify request; the message names the line."""


class VerifyInput(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    id: str
    kind: VerifyKind
    question: str
    answer: str
    evidence: list[str] = []
    json_schema: dict[str, Any] | None = Field(None, alias="schema")
    choices: list[str] | None = None
    tools: list[dict[str, Any]] | None = None
    alternatives: list[str] = []
    label: bool | None = None

    def request(self) -> VerifyRequest:
        evidence = [
            Evidence(chunk_id=str(i), doc_id=self.id, text=t, score=1.0, collection="input")
            for i, t in enumerate(self.evidence, 1)
        ]
        source = self.question
        if evidence:
            context = "\n".join(f"[{e.chunk_id}] {e.text}" for e in evidence)
            source = f"Context:\n{context}\n\n{self.question}"
        return VerifyRequest(
            kind=self.kind,
            source=source,
            question=self.question,
            text=self.answer,
            output=_output(self.kind, self.answer),
            evidence=evidence,
            choices=self.choices,
            json_schema=self.json_schema,
            tools=self.tools,
            alternatives=self.alternatives,
        )


def parse_line(number: int, raw: str) -> VerifyInput:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InputError(f"line {number}: not JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(data, dict):
        raise InputError(f"line {number}: expected a JSON object, got {type(data).__name__}")
    try:
        return VerifyInput.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(line)"
        raise InputError(f"line {number}: {where}: {first['msg']}") from None


def read_lines(text: str) -> list[VerifyInput]:
    """Every non-blank line, validated before any is verified, so a bad file writes nothing."""
    return [parse_line(n, raw) for n, raw in enumerate(text.splitlines(), 1) if raw.strip()]


def output_line(item: VerifyInput, verdict: Verdict) -> str:
    """`reasons` names every failed check; with alternatives, also which of them agreed when the
    answer was accepted (`alternatives: agrees with alternative 2`)."""
    agreed = [f"{c.name}: {c.reason}" for c in verdict.checks if c.passed and c.name == "alternatives" and c.reason]
    return json.dumps(
        {"id": item.id, "accept": verdict.accept, "score": round(verdict.score, 4), "reasons": verdict.reasons + agreed}
    )


def _output(kind: str, answer: str) -> Any:
    """What the flow's engines would have parsed: the label, the JSON, or the text itself."""
    if kind == "classify":
        return answer.strip()
    if kind == "extract":
        try:
            return json.loads(answer)
        except json.JSONDecodeError:
            return None
    if kind == "tool_call":
        return None  # parsed from the text by the tool-call checks, which read several dialects
    return answer
