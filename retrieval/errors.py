"""Errors the retrieval layer raises for conditions a user can fix; callers print them without a
traceback."""

from __future__ import annotations


class RetrievalError(RuntimeError):
    pass


class StoreError(RetrievalError):
    """The vector store cannot do what was asked: locked, unreachable, missing or unfinished."""


class EmbedderError(RetrievalError):
    """The embedding model cannot be loaded."""
