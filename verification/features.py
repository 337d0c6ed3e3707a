"""Feature vectors for the learned verifier: the rule checks' signals plus shape-of-text features.

Features are deliberately dataset-neutral (counts, shares, magnitudes), never words: a model that
learns GSM8K's vocabulary would not transfer to solutions written by other models.
"""

from __future__ import annotations

import math
import re

from slmflow.core.records import VerifyRequest
from verification import grounding, tool_calls
from verification import math as worked
from verification import text as tx

LEARNED_KINDS = ("math", "tool_call", "answer")

# No raw lengths or line counts: they describe how a writer lays out a solution, not whether it
# is right, and would not transfer from GSM8K's one-step-per-line style.
MATH_FEATURES = [
    "wrong_steps",
    "wrong_share",
    "ungrounded_steps",
    "ungrounded_share",
    "ungrounded_numbers",
    "final_present",
    "final_explicit",
    "final_in_work",
    "final_is_last",
    "truncated",
    "question_numbers",
    "question_numbers_used",
    "has_steps",
    "final_integer",
    "final_negative",
    "log_final",
    "final_vs_question",
    "max_step_error",
    "non_integer_results",
    "negative_results",
    "unused_results",
    "ends_cleanly",
    "cue_conflicts",
    "unused_question_numbers",
    "ask_conflict",
    "ask_in_last_step",
    "ask_in_final_step",
]
TOOL_FEATURES = [
    "parsed",
    "abstained",
    "calls",
    "tools",
    "problems",
    "missing_required",
    "unknown_params",
    "type_errors",
    "enum_errors",
    "unknown_functions",
    "relevance",
    "call_relevance",
    "values_grounded",
    "question_numbers",
    "question_conjunctions",
    "calls_vs_conjunctions",
    "name_relevance",
    "ungrounded_numbers",
    "ungrounded_strings",
    "unused_question_numbers",
]
ANSWER_FEATURES = [
    "sentences",
    "min_coverage",
    "mean_coverage",
    "min_best_overlap",
    "mean_best_overlap",
    "missing_numbers",
    "missing_dates",
    "missing_names",
    "negation_mismatch",
    "contradictions",
    "bad_citations",
    "abstained",
    "evidence",
    "log_chars",
    "has_evidence",
]
FEATURE_NAMES = {"math": MATH_FEATURES, "tool_call": TOOL_FEATURES, "answer": ANSWER_FEATURES}


def featurise(req: VerifyRequest) -> list[float]:
    if req.kind == "math":
        return math_features(worked.analyse(req.question or req.source, req.text, req.finish_reason), req.text)
    if req.kind == "tool_call":
        return tool_features(
            tool_calls.analyse(req.question or req.source, req.text, req.output, req.tools or []),
            req.question or req.source,
        )
    if req.kind == "answer":
        return answer_features(grounding.analyse(req.text, req.evidence, req.source), req.text)
    raise ValueError(f"no learned features for kind {req.kind!r}")


def math_features(a: worked.MathAnalysis, text: str) -> list[float]:
    n = len(a.steps)
    results = [s.claimed for s in a.steps]
    errors = [abs(s.computed - s.claimed) / max(abs(s.computed), 1e-9) for s in a.wrong_steps if s.computed is not None]
    used_later = {abs(o) for s in a.steps for o in s.operands}
    unused = sum(not any(tx.same_number(abs(r), u, 1e-6) for u in used_later) for r in results[:-1])
    final = a.final if a.final is not None else 0.0
    q_max = max(a.question_numbers, default=1.0) or 1.0
    return [
        len(a.wrong_steps),
        len(a.wrong_steps) / n if n else 0.0,
        len(a.ungrounded_steps),
        len(a.ungrounded_steps) / n if n else 0.0,
        sum(len(s.ungrounded) for s in a.steps),
        float(a.final is not None),
        float(a.final_explicit),
        float(a.final_in_work),
        float(a.final_is_last_result),
        float(bool(a.truncated)),
        len(a.question_numbers),
        a.question_numbers_used,
        float(n > 0),
        float(a.final is not None and float(final).is_integer()),
        float(final < 0),
        math.log10(abs(final) + 1),
        math.log10((abs(final) + 1) / (q_max + 1)),
        math.log10(max(errors) + 1e-6) if errors else -7.0,
        sum(not float(r).is_integer() for r in results) / n if n else 0.0,
        sum(r < 0 for r in results) / n if n else 0.0,
        unused / n if n else 0.0,
        float(text.rstrip().endswith((".", "!", ")", "]", "}")) or bool(a.final_explicit)),
        sum(s.cue_conflict for s in a.steps) / n if n else 0.0,
        len(a.question_numbers) * (1 - a.question_numbers_used),
        float(a.ask_conflict),
        a.ask_in_last_step,
        a.ask_in_final_step,
    ]


def tool_features(a: tool_calls.ToolAnalysis, question: str) -> list[float]:
    conj = len(re.findall(r"\b(?:and|also|then|respectively|each|both)\b|,", question.lower()))
    return [
        float(a.parsed),
        float(a.abstained),
        len(a.calls),
        a.n_tools,
        len(a.problems),
        a.missing_required,
        a.unknown_params,
        a.type_errors,
        a.enum_errors,
        a.unknown_functions,
        a.relevance,
        a.call_relevance,
        a.values_grounded,
        len(tx.number_values(question)),
        conj,
        len(a.calls) / (conj + 1),
        a.name_relevance,
        a.ungrounded_numbers,
        a.ungrounded_strings,
        a.unused_question_numbers,
    ]


def answer_features(a: grounding.GroundingAnalysis, text: str) -> list[float]:
    s = a.sentences
    cov = [x.coverage for x in s] or [0.0]
    best = [x.best_overlap for x in s] or [0.0]
    return [
        len(s),
        min(cov),
        sum(cov) / len(cov),
        min(best),
        sum(best) / len(best),
        sum(len(x.missing_numbers) for x in s),
        sum(len(x.missing_dates) for x in s),
        sum(len(x.missing_names) for x in s),
        sum(x.negation_mismatch for x in s),
        sum(bool(x.contradiction) for x in s),
        len(a.bad_citations),
        float(a.abstained),
        a.n_evidence,
        math.log1p(len(text)),
        float(a.n_evidence > 0),
    ]
