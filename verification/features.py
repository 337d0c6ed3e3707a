"""Feature vectors for the learned P(correct) of free-text answers: the grounding analysis's
signals plus a few shape-of-text features.

Features are counts, shares and magnitudes, never words: a model that learns one source's
vocabulary would not transfer to another's, and nothing describes the evidence alone (its length
tells the sources apart, not right from wrong answers; so does how much of one evidence sentence an
answer repeats, which was left out when it cost 0.03 AUROC on BEGIN's dev_wow). Personal
statements (`i agree!`, `do you like it?`) are one such shape: they say something about the
speaker, not the evidence.
"""

from __future__ import annotations

import math
import re

from slmflow.core.records import VerifyRequest
from verification import grounding

LEARNED_KINDS = ("answer",)
_PERSONAL = re.compile(r"\b(?:i|i'm|i've|i'd|i'll|my|me|we|our|us|you|your|you're)\b", re.I)
_WORDS = re.compile(r"[a-z0-9']+")

ANSWER_FEATURES = [
    "sentences",
    "min_coverage",
    "mean_coverage",
    "min_best_overlap",
    "mean_best_overlap",
    "copied_words",
    "unsupported_numbers",
    "unsupported_dates",
    "unsupported_names",
    "conflicts",
    "bad_citations",
    "abstained",
    "personal",
    "exclamations_questions",
    "log_words",
]
FEATURE_NAMES = {"answer": ANSWER_FEATURES}


def featurise(req: VerifyRequest) -> list[float]:
    if req.kind != "answer":
        raise ValueError(f"no learned features for kind {req.kind!r}")
    return answer_features(grounding.analyse(req.text, req.evidence, req.source), req)


def answer_features(a: grounding.GroundingAnalysis, req: VerifyRequest) -> list[float]:
    text = req.text if isinstance(req.text, str) else ""
    s = a.sentences
    cov = [x.coverage for x in s] or [0.0]
    best = [x.best_overlap for x in s] or [0.0]
    words = _WORDS.findall(text.lower())
    known = set(_WORDS.findall(" ".join(e.text for e in req.evidence).lower()))
    return [
        len(s),
        min(cov),
        sum(cov) / len(cov),
        min(best),
        sum(best) / len(best),
        sum(w in known for w in words) / len(words) if words else 0.0,
        sum(len(x.missing_numbers) for x in s),
        sum(len(x.missing_dates) for x in s),
        sum(len(x.missing_names) for x in s),
        sum(bool(x.conflict) for x in s),
        len(a.bad_citations),
        float(a.abstained),
        len(_PERSONAL.findall(text)) / len(words) if words else 0.0,
        text.count("!") + text.count("?"),
        math.log1p(len(words)),
    ]
