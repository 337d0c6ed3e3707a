"""The verifier: checks composed per task kind into one verdict.

`accept` is the conjunction of the checks; `score` is the weakest check's score, so a single
failing signal is never averaged away.
"""

from __future__ import annotations

from slmflow.records import CheckResult, Verdict, VerifyRequest
from slmflow.settings import VerifierSettings
from verification import checks


class Verifier:
    def __init__(self, settings: VerifierSettings | None = None):
        self.settings = settings or VerifierSettings()

    def verify(self, req: VerifyRequest) -> Verdict:
        results = self._checks(req)
        return Verdict(accept=all(c.passed for c in results),
                       score=min(c.score for c in results), checks=results)

    def _checks(self, req: VerifyRequest) -> list[CheckResult]:
        s = self.settings
        if req.kind == "classify":
            return [checks.finished(req), checks.valid_choice(req),
                    checks.confident(req, _pick(req.min_confidence, s.classify_min_confidence))]
        if req.kind == "extract":
            return [checks.finished(req), checks.matches_schema(req),
                    checks.values_grounded(req, _pick(req.min_grounded, s.extract_min_grounded))]
        return [checks.finished(req),
                checks.supported_by_evidence(req, _pick(req.min_support, s.answer_min_support))]


def _pick(override: float | None, default: float) -> float:
    return default if override is None else override
