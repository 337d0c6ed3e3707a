"""Split documents into overlapping chunks on sentence boundaries."""

from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n\s*\n")


def chunk_text(text: str, size: int = 600, overlap: int = 100) -> list[str]:
    """Greedy packing of whole sentences up to `size` characters; each chunk starts with the last
    sentences of the previous one (up to `overlap` characters) so facts spanning a border survive.
    A single sentence longer than `size` is split hard."""
    if overlap >= size:
        raise ValueError("overlap must be smaller than size")
    sentences = []
    for s in _SENTENCE_END.split(text):
        s = " ".join(s.split())
        while len(s) > size:
            sentences.append(s[:size])
            s = s[size - overlap:]
        if s:
            sentences.append(s)
    chunks: list[str] = []
    current: list[str] = []
    for sent in sentences:
        if current and len(" ".join(current + [sent])) > size:
            chunks.append(" ".join(current))
            tail: list[str] = []
            for prev in reversed(current):
                if len(" ".join([prev] + tail)) > overlap:
                    break
                tail.insert(0, prev)
            current = tail
        current.append(sent)
    if current:
        chunks.append(" ".join(current))
    return chunks
