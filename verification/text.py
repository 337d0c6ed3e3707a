"""Lexical normalisation shared by the checks: tokens, numbers and names, compared loosely."""

from __future__ import annotations

import re

_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]+|\d+(?:[.,]\d+)*")
_NUMBER = re.compile(r"(?<![A-Za-z])[-+]?\$?\d[\d,]*(?:\.\d+)?%?")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")
_CITATION = re.compile(r"\[(\d+)\]")

STOPWORDS = frozenset("""
a about above after again all also am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further had has
have having he her here hers him his how i if in into is it its itself just me more most my no
nor not now of off on once only or other our ours out over own same she should so some such than
that the their theirs them then there these they this those through to too under until up very
was we were what when where which while who whom why will with would you your yours yes please
thanks thank hi hello dear regards sorry let know help need get got us
""".split())


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text.strip()) if s.strip()]


def content_tokens(text: str) -> set[str]:
    return {t for t in (w.lower().strip("'-") for w in _WORD.findall(text))
            if len(t) > 2 and t not in STOPWORDS and not t[0].isdigit()}


def numbers(text: str) -> set[str]:
    """Numbers normalised so that '$1,200.00', '1200' and '1200.0' compare equal."""
    out = set()
    for raw in _NUMBER.findall(text):
        s = raw.replace(",", "").replace("$", "").replace("%", "").lstrip("+")
        try:
            value = float(s)
        except ValueError:
            continue
        out.add(f"{value:g}")
    return out


def names(text: str) -> set[str]:
    """Capitalised words that do not start a sentence: a cheap stand-in for named entities."""
    found = set()
    for sent in sentences(text):
        words = _WORD.findall(sent)
        for w in words[1:]:
            if w[0].isupper() and w.lower() not in STOPWORDS and len(w) > 1:
                found.add(w.lower())
    return found


def cited_indices(text: str) -> set[int]:
    return {int(n) for n in _CITATION.findall(text)}


def normalise(value: str) -> str:
    return re.sub(r"\s+", " ", value).strip().lower()
