"""Errors a user can fix (a missing file, a malformed line). The CLI prints them without a
traceback; anything else is a bug and keeps its traceback."""

from __future__ import annotations


class EvalError(Exception):
    """A mistake in the inputs: bad path, malformed replay line, unknown item."""
