"""A fleet member's vLLM engine arguments, checked against vLLM's own `AsyncEngineArgs`.

`AsyncEngineArgs` is a plain dataclass: it refuses unknown keys but checks no types, so a
`max_model_len: "4k"` would surface only minutes later, inside the actor, as a stack trace. Here each
given key is looked up among its fields and its value validated against the field's type hint, so a
fleet file with a typo fails when it is loaded, naming the model and the field. Nothing is kept by
hand: a new vLLM release brings its own fields and types.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import types
import typing
from typing import Any

from pydantic import ConfigDict, TypeAdapter, ValidationError

# Set by the fleet itself, not per model: the model comes from the spec's `model`, and the executor
# follows from the placement (workers.placement), which must agree with it.
RESERVED = {
    "model": "set the model with the member's `model:`",
    "distributed_executor_backend": "the fleet picks it from tensor_parallel_size and pipeline_parallel_size",
}
_SCALARS = (int, float, bool, str, type(None))


class EngineArgsError(ValueError):
    """An engine argument vLLM would refuse, named with the fleet member it belongs to."""


def vllm_available() -> bool:
    try:
        import vllm.engine.arg_utils  # noqa: F401 - the import is the question
    except ImportError:
        return False
    return True


@functools.cache
def _fields() -> tuple[dict[str, Any], dict[str, Any]]:
    """(type hint, default) of every `AsyncEngineArgs` field. Importing vLLM costs seconds, once."""
    from vllm.config.quantization import QuantizationConfigArgs
    from vllm.engine.arg_utils import AsyncEngineArgs

    # `quantization_config` names a type imported only under TYPE_CHECKING; supply it.
    hints = typing.get_type_hints(AsyncEngineArgs, localns={"QuantizationConfigArgs": QuantizationConfigArgs})
    defaults = {f.name: f.default for f in dataclasses.fields(AsyncEngineArgs)}
    return hints, defaults


def _is_scalar(hint: Any) -> bool:
    args = typing.get_args(hint)
    if typing.get_origin(hint) is typing.Literal:
        return True
    if args and typing.get_origin(hint) in (typing.Union, types.UnionType):
        return all(_is_scalar(a) for a in args)
    return hint in _SCALARS


@functools.cache
def _adapter(hint: Any) -> TypeAdapter:
    if dataclasses.is_dataclass(hint) or (isinstance(hint, type) and hasattr(hint, "model_fields")):
        # vLLM's config classes (compilation_config, ...) take a dict of their own fields; they carry
        # their own pydantic config.
        return TypeAdapter(hint)
    # Strict for plain values, so YAML's `enforce_eager: "yes"` or `max_model_len: 4096.5` is an
    # error rather than a silent coercion.
    return TypeAdapter(hint, config=ConfigDict(arbitrary_types_allowed=True, strict=_is_scalar(hint)))


def validate_engine_args(member: str, args: dict[str, Any]) -> dict[str, Any]:
    """`args` unchanged when vLLM would take every key and value; else `EngineArgsError` naming
    `member` and each bad field. Needs vLLM importable."""
    hints, defaults = _fields()
    problems = []
    for key, value in args.items():
        if key in RESERVED:
            problems.append(f"engine_args.{key}: {RESERVED[key]}")
            continue
        if key not in hints:
            near = difflib.get_close_matches(key, hints, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            problems.append(f"engine_args.{key}: not an argument of vLLM's AsyncEngineArgs{hint}")
            continue
        if value is None and defaults.get(key) is None:
            continue
        try:
            _adapter(hints[key]).validate_python(value)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(["engine_args", key, *(str(part) for part in first["loc"])])
            problems.append(f"{field}: {first['msg']} (got {value!r}; vLLM's type is {hints[key]})")
    if problems:
        raise EngineArgsError(f"fleet member {member!r}: " + "; ".join(problems))
    return args
