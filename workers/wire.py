"""The wire format of the coalesced list calls (workers.coalesce): a list of requests travels as one
JSON document, and each answer as its own, or as the exception it raised, which Ray pickles so that
its type (an engine's refusal, a verifier's fault) reaches the caller.

Ray pickles a pydantic model field by field, ~15 µs a request here; pydantic's JSON codec does it in
~2-4 µs. Every unit sends two requests and reads two answers, and at thousands of units per second
the flow process's one core is what runs out (docs/scale.md)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter

Model = TypeVar("Model", bound=BaseModel)


@functools.cache
def _list_of(model: type[BaseModel]) -> TypeAdapter:
    return TypeAdapter(list[model])  # type: ignore[valid-type]


def dump_requests(requests: Sequence[BaseModel]) -> bytes:
    return b"[" + b",".join(r.__pydantic_serializer__.to_json(r) for r in requests) + b"]"


def load_requests(model: type[Model], payload: bytes) -> list[Model]:
    return _list_of(model).validate_json(payload)


def dump_answers(answers: Sequence[BaseModel | BaseException]) -> list[bytes | BaseException]:
    return [a if isinstance(a, BaseException) else a.__pydantic_serializer__.to_json(a) for a in answers]


def load_answer(model: type[Model], answer: Any) -> Model:
    return model.model_validate_json(answer)
