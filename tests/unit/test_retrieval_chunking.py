"""Sentence chunking: size bound, nothing lost, overlap carried across borders."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retrieval.chunking import chunk_text

words = st.text(alphabet="abcdefghij", min_size=1, max_size=10)
sentences = st.lists(words, min_size=1, max_size=30).map(lambda ws: " ".join(ws) + st_end(ws))
documents = st.lists(sentences, min_size=1, max_size=40).map(" ".join)


def st_end(ws: list[str]) -> str:
    return "?" if len(ws) % 3 == 0 else "."


@settings(max_examples=150, deadline=None)
@given(text=documents, size=st.integers(50, 400), overlap_ratio=st.floats(0, 0.9))
def test_chunks_are_bounded_and_lose_no_words(text: str, size: int, overlap_ratio: float) -> None:
    overlap = int(size * overlap_ratio)
    chunks = chunk_text(text, size, overlap)
    assert chunks and all(0 < len(c) <= size for c in chunks)
    # Words are at most 10 characters, so hard splits always find a space: words stay whole.
    assert set(" ".join(chunks).split()) == set(text.split())
    assert chunks == chunk_text(text, size, overlap)


def test_whole_sentences_and_overlap() -> None:
    text = "One two three. Four five six. Seven eight nine. Ten eleven twelve."
    assert chunk_text(text, size=36, overlap=17) == [
        "One two three. Four five six.",
        "Four five six. Seven eight nine.",
        "Seven eight nine. Ten eleven twelve.",
    ]
    # One character less and the last overlap no longer fits: it gives way to the size bound.
    assert chunk_text(text, size=35, overlap=17)[-1] == "Ten eleven twelve."
    assert chunk_text(text, size=35, overlap=0) == [
        "One two three. Four five six.",
        "Seven eight nine.",
        "Ten eleven twelve.",
    ]


def test_paragraph_breaks_end_sentences_and_whitespace_is_normalised() -> None:
    assert chunk_text("Heading\n\nBody  text\nwraps here", size=12, overlap=0) == ["Heading", "Body text", "wraps here"]


def test_overlong_sentence_is_split_at_spaces() -> None:
    sentence = " ".join(f"w{i:03d}" for i in range(100))  # 499 characters, no sentence end
    chunks = chunk_text(sentence, size=100, overlap=20)
    assert all(len(c) <= 100 for c in chunks)
    assert all(w.startswith("w") and len(w) == 4 for c in chunks for w in c.split())


@pytest.mark.parametrize(("size", "overlap"), [(100, 100), (0, 0), (100, -1)])
def test_bad_parameters(size: int, overlap: int) -> None:
    with pytest.raises(ValueError):
        chunk_text("text", size, overlap)
