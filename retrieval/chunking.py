"""Split documents into overlapping chunks on sentence boundaries."""

from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n\s*\n")


def _hard_split(sentence: str, size: int, overlap: int) -> list[str]:
    """Cut a sentence longer than `size` into overlapping pieces, at a space where one exists in
    the second half of the window so words stay whole. The overlap starts at a word and is capped
    at half a piece so every step advances."""
    pieces = []
    while len(sentence) > size:
        cut = sentence.rfind(" ", size // 2, size + 1)
        cut = cut if cut > 0 else size
        pieces.append(sentence[:cut].rstrip())
        start = cut - min(overlap, cut // 2)
        if start > 0 and sentence[start - 1] != " ":
            space = sentence.find(" ", start, cut)
            start = space + 1 if space >= 0 else cut
        sentence = sentence[start:].lstrip()
    if sentence:
        pieces.append(sentence)
    return pieces


def chunk_text(text: str, size: int = 600, overlap: int = 100) -> list[str]:
    """Greedy packing of whole sentences up to `size` characters; each chunk starts with the last
    sentences of the previous one (up to `overlap` characters) so facts spanning a border survive.
    No chunk is longer than `size`: the overlap gives way when it would not fit."""
    if size <= 0 or overlap < 0 or overlap >= size:
        raise ValueError(f"need 0 <= overlap < size, got size={size}, overlap={overlap}")
    sentences = []
    for raw in _SENTENCE_END.split(text):
        sentence = " ".join(raw.split())
        if sentence:
            sentences.extend(_hard_split(sentence, size, overlap))
    chunks: list[str] = []
    current: list[str] = []
    for sent in sentences:
        if current and len(" ".join(current + [sent])) > size:
            chunks.append(" ".join(current))
            tail: list[str] = []
            for prev in reversed(current):
                if len(" ".join([prev, *tail, sent])) > size or len(" ".join([prev, *tail])) > overlap:
                    break
                tail.insert(0, prev)
            current = tail
        current.append(sent)
    if current:
        chunks.append(" ".join(current))
    return chunks
