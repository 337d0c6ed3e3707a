"""Sentence-level grounding of free-text answers in the retrieved evidence.

Every claim sentence needs its content words in the evidence, and its numbers, dates and names
there exactly (after normalisation). Embedding similarity is optional and never enough alone: it
rates "Qdrant is written in Java" as high as "written in Rust", so the lexical checks decide and
the embedder can only add a reason to reject.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from slmflow.core.records import Evidence
from verification import text as tx

_CITATION = re.compile(r"\[([^\[\]\s]{1,80})\]")
_NEGATION = re.compile(r"\b(?:not|no|never|none|neither|nor|without|cannot|n't)\b|n't\b", re.I)
# "I could not find this in the context" is an honest non-answer, not an unsupported claim.
_ABSTAIN = re.compile(
    r"\b(?:context|passages?|evidence|documents?)\b.*\b(?:not|no|doesn't|does not)\b"
    r"|\b(?:not|no)\b.*\b(?:context|passages?|evidence|information)\b",
    re.I,
)


class Embedder(Protocol):
    def embed(self, texts: list[str]) -> list[list[float]]: ...


@dataclass
class SentenceSupport:
    index: int
    sentence: str
    coverage: float  # share of content stems found anywhere in the support
    best_overlap: float  # share found in the single best evidence sentence
    missing_numbers: list[str] = field(default_factory=list)
    missing_dates: list[str] = field(default_factory=list)
    missing_names: list[str] = field(default_factory=list)
    negation_mismatch: bool = False
    contradiction: str = ""  # a word whose opposite the closest passage uses instead
    semantic: float | None = None

    def problem(self, min_coverage: float, min_semantic: float) -> str:
        label = f"sentence {self.index} {_short(self.sentence)!r}"
        unknown = self.missing_numbers + self.missing_dates + self.missing_names
        if unknown:
            return f"{label} states {unknown[:3]}, found in no evidence"
        if self.contradiction:
            return f"{label} says {self.contradiction!r} where the passage says the opposite"
        if self.negation_mismatch and self.best_overlap >= 0.8:
            return f"{label} reverses the negation of the passage it copies"
        if self.coverage < min_coverage:
            return f"{label} is only {self.coverage:.0%} supported by the evidence"
        if self.semantic is not None and self.semantic < min_semantic:
            return f"{label} matches no evidence passage in meaning (similarity {self.semantic:.2f})"
        return ""


@dataclass
class GroundingAnalysis:
    sentences: list[SentenceSupport]
    bad_citations: list[str]
    n_evidence: int
    abstained: bool


def analyse(
    answer: str, evidence: list[Evidence], source: str = "", embedder: Embedder | None = None
) -> GroundingAnalysis:
    text = answer if isinstance(answer, str) else ""
    ids = {e.chunk_id for e in evidence}
    bad = sorted({c for c in _CITATION.findall(text) if not _citation_ok(c, ids, len(evidence))})
    plain = re.sub(r"\s+([.,;:!?])", r"\1", _CITATION.sub("", text))
    all_sentences = [s for s in tx.sentences(plain) if tx.content_tokens(s)]
    claims = [s for s in all_sentences if not _ABSTAIN.search(s)]
    ev_text = "\n".join(e.text for e in evidence)
    support_text = f"{source}\n{ev_text}"
    ev_sentences = [s for e in evidence for s in tx.sentences(e.text)] or [ev_text]
    ev_stems = [tx.stems(s) for s in ev_sentences]
    support_stems = tx.stems(support_text)
    prefixes = {s[:5] for s in support_stems if len(s) >= 5}
    support_numbers = tx.numbers(support_text) | {f"{v:g}" for v in tx.implied_numbers(support_text)}
    support_dates = tx.dates(support_text)
    support_lower = support_text.lower()
    support_words = {w.lower() for w in re.findall(r"\w+", support_text)}
    sims = _similarities(claims, ev_sentences, embedder) if claims and evidence else None
    out = []
    for i, sent in enumerate(claims, 1):
        stems = tx.stems(sent)
        hits = {s for s in stems if s in support_stems or (len(s) >= 5 and s[:5] in prefixes)}
        best = max(ev_stems, key=lambda e: len(stems & e)) if ev_stems else set()
        best_sentence = ev_sentences[ev_stems.index(best)] if ev_stems else ""
        out.append(
            SentenceSupport(
                index=i,
                sentence=sent,
                coverage=len(hits) / len(stems) if stems else 1.0,
                best_overlap=len(stems & best) / len(stems) if stems else 1.0,
                missing_numbers=sorted(_bare_numbers(sent) - support_numbers),
                missing_dates=sorted(d for d in tx.dates(sent) if not any(s.startswith(d) for s in support_dates)),
                missing_names=[n for n in tx.name_spans(sent) if not _name_found(n, support_lower, support_words)],
                negation_mismatch=bool(_NEGATION.search(sent)) != bool(_NEGATION.search(best_sentence)),
                contradiction=_contradiction(sent, best_sentence),
                semantic=None if sims is None else float(sims[i - 1]),
            )
        )
    return GroundingAnalysis(
        sentences=out, bad_citations=bad, n_evidence=len(evidence), abstained=len(claims) < len(all_sentences)
    )


def problems(a: GroundingAnalysis, min_coverage: float, min_semantic: float) -> list[str]:
    found = [p for s in a.sentences if (p := s.problem(min_coverage, min_semantic))]
    if a.bad_citations:
        found.append(f"cites evidence that was not retrieved: {a.bad_citations[:5]}")
    return found


def _contradiction(sentence: str, passage: str) -> str:
    mine = set(re.findall(r"[a-z]+", sentence.lower()))
    theirs = set(re.findall(r"[a-z]+", passage.lower()))
    return next((w for w in sorted(mine) if w in tx.ANTONYMS and w not in theirs and tx.ANTONYMS[w] in theirs), "")


def _name_found(name: str, support_lower: str, support_words: set[str]) -> bool:
    """The whole name, or each of its words, somewhere in the support ('MR's' finds 'MR')."""
    plain = re.sub(r"'s\b", "", name).lower()
    return plain in support_lower or all(w in support_words for w in re.findall(r"\w+", plain))


def _bare_numbers(sentence: str) -> set[str]:
    """Numbers that state a fact; list markers like '1.' and citation indices are not claims."""
    return tx.numbers(re.sub(r"^\s*\d+[.)]\s+", "", sentence))


def _citation_ok(cite: str, ids: set[str], n: int) -> bool:
    if cite.isdigit():
        return 1 <= int(cite) <= n or cite in ids
    return cite in ids or not re.search(r"[\d:#_\-]", cite)  # plain words in brackets are not citations


def _similarities(claims: list[str], ev_sentences: list[str], embedder: Embedder | None) -> np.ndarray | None:
    if embedder is None:
        return None
    vectors = np.asarray(embedder.embed(claims + ev_sentences), dtype=np.float32)
    c, e = vectors[: len(claims)], vectors[len(claims) :]
    return (c @ e.T).max(axis=1)


def _short(s: str, n: int = 60) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"
