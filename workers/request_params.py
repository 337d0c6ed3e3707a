"""Which chat-completion parameters a model accepts: the token limit's name, sampling, log-probs.

Reasoning models (OpenAI's o-series, gpt-5) refuse `max_tokens` (they want `max_completion_tokens`),
any `temperature` but the default, and `logprobs`. What each model takes comes from LiteLLM's
per-provider mapping (`get_optional_params`, maintained with its price map), so the first request
is already right for every model LiteLLM knows. A model it does not know gets the classic set, and
when the server refuses one of them with HTTP 400 naming the parameter, `adapted` says what to send
instead: the engine retries at once and keeps the adjusted set for the rest of its life.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Literal

from pydantic import BaseModel

from slmflow.core.prices import litellm_module


class RequestParams(BaseModel):
    token_limit: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    sampling: bool = True  # send `temperature`
    logprobs: bool = True

    def kwargs(self, max_tokens: int, temperature: float) -> dict[str, Any]:
        out: dict[str, Any] = {self.token_limit: max_tokens}
        if self.sampling:
            out["temperature"] = temperature
        if self.logprobs:
            out["logprobs"] = True
        return out


@functools.cache
def params_for(model: str) -> RequestParams:
    """What LiteLLM would send `model` on an OpenAI-style API when asked for a token limit, greedy
    sampling and log-probs, dropping what the model refuses."""
    try:
        sent = litellm_module().get_optional_params(
            model=model, custom_llm_provider="openai", max_tokens=1, temperature=0.0, logprobs=True, drop_params=True
        )
    except Exception:  # noqa: BLE001 - an unknown model: the classic set, adapted on refusal
        return RequestParams()
    return RequestParams(
        token_limit="max_completion_tokens" if "max_completion_tokens" in sent else "max_tokens",
        sampling="temperature" in sent,
        logprobs="logprobs" in sent,
    )


_NAMES = ("max_completion_tokens", "max_tokens", "temperature", "top_logprobs", "logprobs")


def refused_param(param: str | None, message: str) -> str | None:
    """The parameter a 400 response refuses: its `param` field (OpenAI's), else the one of ours its
    message names first ("Unsupported parameter: 'max_tokens' ... Use 'max_completion_tokens'")."""
    if param in _NAMES:
        return param
    hits = sorted((m.start(), name) for name in _NAMES if (m := re.search(rf"\b{name}\b", message or "")))
    return hits[0][1] if hits else None


def adapted(params: RequestParams, refused: str | None) -> RequestParams | None:
    """`params` without what the server refused; None when that changes nothing (the 400 was
    about something else, or this was tried already)."""
    if refused == "max_tokens" and params.token_limit == "max_tokens":
        return params.model_copy(update={"token_limit": "max_completion_tokens"})
    if refused == "max_completion_tokens" and params.token_limit == "max_completion_tokens":
        return params.model_copy(update={"token_limit": "max_tokens"})
    if refused == "temperature" and params.sampling:
        return params.model_copy(update={"sampling": False})
    if refused in ("logprobs", "top_logprobs") and params.logprobs:
        return params.model_copy(update={"logprobs": False})
    return None
