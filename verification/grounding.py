"""Sentence-level grounding of free-text answers in the retrieved evidence.

Two questions per claim sentence, kept apart because they fail differently:

- **Does the evidence contradict it?** (`SentenceSupport.conflict`, the hard `grounding` check)
  A negation the closest passage does not have, or lacks one it has (`Gift cards cannot be
  returned` against `you can return a gift card`); an opposite (`increased` where the passage says
  `decreased`); a number where the passage that speaks of the same thing (the same unit, the same
  condition) gives another (`30 days` for opened laptops where the passage says opened electronics
  `14 days`, and `30 days` only for `unopened` items); a citation of a chunk that was not retrieved.
- **How much of it does the evidence state?** (`coverage`, numbers, dates and names found there):
  abstractive but faithful sentences (an author's conclusion, a summary) state words the evidence
  does not, so this is graded evidence for the learned P(correct) (`verification.learned`), and a
  hard threshold only in the rules-only configuration.

Coverage counts the evidence only: words taken from the question support nothing (`Do you know why
it closed?` -> `It was closed in 1985` is a claim about closing all the same). Numbers, dates and
names may come from the question too. Embedding similarity is optional and never enough alone: it
rates "Qdrant is written in Java" as high as "written in Rust", so it can only add a reason to
reject.
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
# A number and the word it counts: `14 days`, `$30 fee`, `5 mg`.
_QUANTITY = re.compile(r"(?<![\w.])\$?(\d[\d,]*(?:\.\d+)?)\s*%?\s*([a-z]{3,})?", re.I)
_OPPOSITE_PREFIXES = ("un", "non", "in", "im", "dis")
_REPLY = re.compile(r"^\W*(?:yes|yeah|yea|no|nope|not really|not sure)\s*(?:[,.!;:-]|\s+but\b)\s*", re.I)
_NOT_ONLY = re.compile(r"\bnot (?:only|just|merely)\b", re.I)


class Embedder(Protocol):
    def embed(self, texts: list[str]) -> list[list[float]]: ...


@dataclass
class SentenceSupport:
    index: int
    sentence: str
    coverage: float  # share of content stems found anywhere in the evidence
    best_overlap: float  # share found in the single best evidence sentence
    # share of the closest evidence sentence's stems that the claim repeats: near 1 when the
    # claim restates that sentence, whatever it adds
    containment: float = 0.0
    missing_numbers: list[str] = field(default_factory=list)
    missing_dates: list[str] = field(default_factory=list)
    missing_names: list[str] = field(default_factory=list)
    conflict: str = ""  # why the evidence contradicts the sentence; "" if it does not
    semantic: float | None = None

    @property
    def unsupported(self) -> list[str]:
        return self.missing_numbers + self.missing_dates + self.missing_names

    def problem(self, min_coverage: float, min_semantic: float) -> str:
        """Why the sentence fails in the rules-only configuration; "" if it passes."""
        label = f"sentence {self.index} {_short(self.sentence)!r}"
        if self.conflict:
            return f"{label} {self.conflict}"
        if self.unsupported:
            return f"{label} states {self.unsupported[:3]}, found in no evidence"
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

    @property
    def conflicts(self) -> list[str]:
        found = [f"sentence {s.index} {_short(s.sentence)!r} {s.conflict}" for s in self.sentences if s.conflict]
        if self.bad_citations:
            found.append(f"cites evidence that was not retrieved: {self.bad_citations[:5]}")
        return found


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
    evidence_stems = tx.stems(ev_text)
    prefixes = {s[:5] for s in evidence_stems if len(s) >= 5}
    support_numbers = tx.numbers(support_text) | {f"{v:g}" for v in tx.implied_numbers(support_text)}
    support_dates = tx.dates(support_text)
    support_lower = support_text.lower()
    support_words = {w.lower() for w in re.findall(r"\w+", support_text)}
    sims = _similarities(claims, ev_sentences, embedder) if claims and evidence else None
    out = []
    for i, sent in enumerate(claims, 1):
        stems = tx.stems(sent)
        hits = {s for s in stems if s in evidence_stems or (len(s) >= 5 and s[:5] in prefixes)}
        overlap = [len(stems & e) for e in ev_stems]
        best = int(np.argmax(overlap)) if overlap else 0
        contained = [len(stems & e) / len(e) if e else 0.0 for e in ev_stems]
        closest = int(np.argmax(contained)) if contained else 0
        numbers = _bare_numbers(sent)
        missing_numbers = sorted(numbers - support_numbers)
        s = SentenceSupport(
            index=i,
            sentence=sent,
            coverage=len(hits) / len(stems) if stems else 1.0,
            best_overlap=overlap[best] / len(stems) if stems and overlap else 1.0,
            containment=contained[closest] if contained else 0.0,
            missing_numbers=missing_numbers,
            missing_dates=sorted(d for d in tx.dates(sent) if not any(x.startswith(d) for x in support_dates)),
            missing_names=[n for n in tx.name_spans(sent) if not _name_found(n, support_lower, support_words)],
            semantic=None if sims is None else float(sims[i - 1]),
        )
        if ev_stems:
            s.conflict = _conflict(sent, s, ev_sentences, ev_stems, best, closest, set(missing_numbers))
        out.append(s)
    return GroundingAnalysis(
        sentences=out, bad_citations=bad, n_evidence=len(evidence), abstained=len(claims) < len(all_sentences)
    )


def problems(a: GroundingAnalysis, min_coverage: float, min_semantic: float) -> list[str]:
    found = [p for s in a.sentences if (p := s.problem(min_coverage, min_semantic))]
    if a.bad_citations:
        found.append(f"cites evidence that was not retrieved: {a.bad_citations[:5]}")
    return found


def _conflict(
    sent: str,
    s: SentenceSupport,
    ev_sentences: list[str],
    ev_stems: list[set[str]],
    best: int,
    closest: int,
    missing: set[str],
) -> str:
    stems = tx.stems(sent)
    # A claim that restates a passage (most of its words, or most of the passage's) with the
    # opposite polarity denies it. Too short a claim or passage says too little to tell.
    for k in dict.fromkeys((best, closest)):
        shared = len(stems & ev_stems[k])
        if len(stems) < 3 or len(ev_stems[k]) < 3:
            continue
        forward, back = shared / len(stems), shared / len(ev_stems[k])
        if (forward >= 0.8 and back >= 0.5) or (back >= 0.8 and forward >= 0.4):
            if _negated(sent) != _negated(ev_sentences[k]):
                return f"reverses the negation of {_short(ev_sentences[k], 50)!r}"
    opposite = _opposite(sent, ev_sentences[best]) if s.best_overlap >= 0.6 else ""
    if opposite:
        return f"says {opposite!r} where the passage says the opposite"
    return _quantity_conflict(sent, ev_sentences, ev_stems, missing)


def _negated(sentence: str) -> bool:
    """Negation of the content: an answer's leading `No,` or `Not really` replies to the question,
    and `not only X but Y` asserts both."""
    body = _REPLY.sub("", sentence)
    return bool(_NEGATION.search(_NOT_ONLY.sub("", body)))


def _opposite(sentence: str, passage: str) -> str:
    mine = set(re.findall(r"[a-z]+", sentence.lower()))
    theirs = set(re.findall(r"[a-z]+", passage.lower()))
    return next((w for w in sorted(mine) if w in tx.ANTONYMS and w not in theirs and tx.ANTONYMS[w] in theirs), "")


def _quantity_conflict(sent: str, ev_sentences: list[str], ev_stems: list[set[str]], missing: set[str]) -> str:
    """A number for a thing (`30 days`) that the evidence gives otherwise for the case the claim is
    about: another number with the same unit in the passage closest to the claim, or the same number
    only under the opposite condition (`unopened` where the claim says `opened`)."""
    stems = tx.stems(sent)
    for raw, unit in _QUANTITY.findall(sent):
        if not unit:
            continue
        value = tx.numbers(raw)
        unit_stem = tx.stem(unit)
        candidates = []
        for passage, p_stems in zip(ev_sentences, ev_stems):
            for other, other_unit in _QUANTITY.findall(passage):
                if other_unit and tx.stem(other_unit) == unit_stem:
                    candidates.append((len(stems & p_stems) - _opposed(stems, passage), passage, tx.numbers(other)))
        if not candidates:
            continue
        score, passage, other = max(candidates, key=lambda c: c[0])
        if score < 0.5 * len(stems):
            continue  # no passage speaks of the same thing
        if other != value and (value & missing or _opposed(stems, _passage_with(value, unit_stem, ev_sentences))):
            given = next(iter(other), "?")
            return f"says {raw} {unit} where the passage closest to it says {given}: {_short(passage, 50)!r}"
    return ""


def _passage_with(value: set[str], unit_stem: str, ev_sentences: list[str]) -> str:
    for passage in ev_sentences:
        for other, other_unit in _QUANTITY.findall(passage):
            if other_unit and tx.stem(other_unit) == unit_stem and tx.numbers(other) == value:
                return passage
    return ""


def _opposed(stems: set[str], passage: str) -> int:
    """Words of the passage that negate a word of the claim by a prefix (`unopened` vs `opened`)."""
    found = 0
    for word in re.findall(r"[a-z]+", passage.lower()):
        for prefix in _OPPOSITE_PREFIXES:
            if word.startswith(prefix) and tx.stem(word[len(prefix) :]) in stems:
                found += 1
                break
    return found


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
