"""Errors that cross role boundaries: raised in a worker, handled in the flow.

They live on the ground floor so that the flow can tell them apart without importing the workers
that raise them. Through Ray they arrive as `RayTaskError` subclasses of these classes, so
`except EngineOutputError` still matches.
"""

from __future__ import annotations


class EngineOutputError(RuntimeError):
    """The engine answered, but not with something the request can use (e.g. empty choices), or
    the input cannot fit the model: the same input fails the same way, so it is not retried."""


class FrontierError(RuntimeError):
    """The frontier could not produce an answer after retries."""


class StructuredOutputUnsupported(RuntimeError):
    """An endpoint refused the structured-output form it was sent (or was configured without one):
    a setting to fix, not an input to retry or escalate."""
