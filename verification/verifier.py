"""The verifier: checks composed per task kind into one verdict.

Rule verdicts: `accept` is the conjunction of the checks; `score` is the weakest check's score,
so a single failing signal is never averaged away. Alternatives in the request (other fleet
members' answers to the same task) add the agreement check (`verification.agreement`); an
`IndependentChecker` (`verification.independent`) adds live alternatives and, for math, a program
of thought. With a learned model (`verification.learned`), the checks still run and are reported,
but `score` is the model's calibrated P(correct) and `accept` compares it with the calibrated
threshold; a structural fault (unparseable output, schema violation, truncation) and a failed
agreement or independent check reject whatever the model says.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from slmflow.core.records import CheckResult, Verdict, VerifyRequest
from slmflow.core.settings import VerifierSettings
from verification import agreement, checks, math, reasoning, tool_calls
from verification.grounding import Embedder

if TYPE_CHECKING:
    from verification.independent import IndependentChecker
    from verification.learned import LearnedVerifier

# Checks whose failure no learned score can overrule: the output is unusable as it stands.
HARD_CHECKS = frozenset(
    {
        "finished",
        "schema",
        "valid_choice",
        "label_fits",
        "tool_call_parse",
        "tool_call_schema",
        "result_stated",
        "arguments_grounded",
        "grounding",
    }
)


class Verifier:
    def __init__(
        self,
        settings: VerifierSettings | None = None,
        embedder: Embedder | None = None,
        learned: LearnedVerifier | None = None,
        independent: IndependentChecker | None = None,
    ):
        self.settings = settings or VerifierSettings()
        self.embedder = embedder
        self.learned = learned
        self.independent = independent
        # What the configuration asked for but could not have (weights not found), for the caller
        # to show: the verifier works without it, with the rule verdict in its place.
        self.degraded: list[str] = []

    @classmethod
    def configured(cls, settings: VerifierSettings, independent: IndependentChecker | None = None) -> Verifier:
        """The verifier as configured: the same for the flow's `VerifierWorker`, `slmflow verify`
        and `slmflow eval`. Weights come from `settings.weights_dir` when it holds them, else from
        the package."""
        learned = None
        missing: list[str] = []
        if settings.learned:
            from verification.features import LEARNED_KINDS
            from verification.learned import LearnedVerifier

            learned = LearnedVerifier.load(settings.weights_dir)
            missing = [
                f"learned {kind} model: no {kind}.json in {settings.weights_dir} or the package; "
                f"{kind} answers get the rule verdict (`slmflow verifier train` builds it)"
                for kind in LEARNED_KINDS
                if not learned.covers(kind)
            ]
        verifier = cls(settings, learned=learned, independent=independent)
        verifier.degraded = missing
        return verifier

    def verify(self, req: VerifyRequest) -> Verdict:
        second: list[CheckResult] = []
        if self.independent is not None:
            req, second = self.independent.extend(req)
        agree = agreement.check(req)
        second = [*([agree] if agree is not None else []), *second]
        results = self._checks(req)
        # A task that sets its own support threshold asked for the rule verdict.
        if self.learned is None or not self.learned.covers(req.kind) or req.min_support is not None:
            results = [*results, *second]
            return Verdict(accept=all(c.passed for c in results), score=min(c.score for c in results), checks=results)
        p, threshold = self.learned.predict(req)
        hard_fail = any(not c.passed and c.name in HARD_CHECKS for c in results)
        learned = CheckResult(
            name="learned",
            passed=p >= threshold,
            score=round(p, 4),
            reason="" if p >= threshold else f"P(correct) {p:.2f} < {threshold:.2f}",
        )
        # Disagreeing alternatives are a veto, not a feature: see docs/verifier.md.
        vetoes = [c for c in second if not c.passed]
        cap = min([0.0 if hard_fail else 1.0, *(c.score for c in vetoes)])
        return Verdict(
            accept=learned.passed and not hard_fail and not vetoes,
            score=round(min(p, cap), 4),
            checks=[*results, learned, *second],
        )

    def _checks(self, req: VerifyRequest) -> list[CheckResult]:
        s = self.settings
        if req.kind == "classify":
            return [
                checks.finished(req),
                checks.valid_choice(req),
                checks.label_fits(req),
                checks.confident(req, _pick(req.min_confidence, s.classify_min_confidence)),
            ]
        if req.kind == "extract":
            return [
                checks.finished(req),
                checks.matches_schema(req),
                checks.values_grounded(req, _pick(req.min_grounded, s.extract_min_grounded)),
            ]
        if req.kind == "math":
            return math.checks(req)
        if req.kind == "reasoning":
            return reasoning.checks(req)
        if req.kind == "tool_call":
            # Empty text is a decline here, so only the token limit marks a call unfinished.
            cut = [checks.finished(req)] if req.finish_reason == "length" else []
            grounded = _pick(req.min_grounded, s.tool_call_min_grounded) if req.grounded_arguments else None
            return [*cut, *tool_calls.checks(req, grounded)]
        return [
            checks.finished(req),
            *checks.supported_by_evidence(req, _pick(req.min_support, s.answer_min_support), self.embedder),
        ]


def _pick(override: float | None, default: float) -> float:
    return default if override is None else override
