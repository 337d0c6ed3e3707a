"""Token prices and token counts from a maintained source: LiteLLM's model price map and tokenizers.

LiteLLM ships its price map inside the wheel; `LITELLM_LOCAL_MODEL_COST_MAP` keeps it from fetching
a newer one at import, so prices are those of the installed version (upgrade litellm to refresh
them). A user's own prices (private contracts, self-hosted endpoints) override it, and a model can
be marked unpriced on purpose. A model that is in neither is an error, never a default price.

How these prices make up a run's cost: docs/costs.md.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, Field

# Read by litellm at import: the bundled map, no network.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "true")


class Price(BaseModel):
    """USD per million tokens."""

    input_per_m: float = Field(ge=0)
    output_per_m: float = Field(ge=0)

    def usd(self, tokens_in: int, tokens_out: int) -> float:
        return (tokens_in * self.input_per_m + tokens_out * self.output_per_m) / 1e6


class UnpricedModelError(LookupError):
    """A model with no price in LiteLLM's map and none of the user's."""


@functools.cache
def litellm_module() -> Any:
    """LiteLLM, imported once (~3 s: only where a price or a token count is needed). Import its
    submodules only after this returns: a thread importing one while another imports the package
    deadlocks in importlib, which fails one import and can leave the other a half-built module."""
    import litellm

    litellm.suppress_debug_info = True
    return litellm


@functools.cache
def litellm_price(model: str) -> Price | None:
    """LiteLLM's list price for `model` (provider prefixes such as `anthropic/` accepted); None when
    it has none."""
    try:
        info = litellm_module().get_model_info(model)
    except Exception:  # noqa: BLE001 - litellm raises a bare Exception for unmapped models
        return None
    given, taken = info.get("input_cost_per_token"), info.get("output_cost_per_token")
    if given is None or taken is None:
        return None
    return Price(input_per_m=given * 1e6, output_per_m=taken * 1e6)


def resolve(model: str, aliases: Mapping[str, str]) -> str:
    """The model whose price and tokenizer stand for `model` (e.g. the local stand-in for the
    frontier it stands in for)."""
    return aliases.get(model, model)


def price_for(model: str, overrides: Mapping[str, Price | None], aliases: Mapping[str, str]) -> Price | None:
    """The user's price for `model` (None there: unpriced on purpose), else LiteLLM's; raises
    `UnpricedModelError` when neither has one."""
    for name in dict.fromkeys((model, resolve(model, aliases))):
        if name in overrides:
            return overrides[name]
    found = litellm_price(resolve(model, aliases))
    if found is None:
        raise UnpricedModelError(
            f"no price for model {model!r}: LiteLLM's price map does not list it. Give it one with "
            f'SLMFLOW_PRICES=\'{{"{model}": {{"input_per_m": ..., "output_per_m": ...}}}}\' (USD per million '
            f'tokens), price it as a listed model with SLMFLOW_PRICE_ALIASES=\'{{"{model}": "gpt-4o"}}\', or mark '
            f"it unpriced with SLMFLOW_PRICES='{{\"{model}\": null}}'"
        )
    return found


def count_tokens(model: str, aliases: Mapping[str, str], messages: list[dict] | None = None, text: str = "") -> int:
    """Tokens of `messages` (chat formatting included) or `text` as `model`'s tokenizer counts them:
    tiktoken for OpenAI models, the provider's tokenizer where LiteLLM has one, else LiteLLM's default.
    The counts are LiteLLM's `token_counter`'s, computed without its per-call tokenizer lookup."""
    name = resolve(model, aliases)
    if messages is None:
        return _count_text(name, text) if text else 0
    if any(key == "name" or not isinstance(value, str | None) for m in messages for key, value in m.items()):
        return int(litellm_module().token_counter(model=name, messages=messages))  # names, tool calls
    # LiteLLM's rule for plain messages: a constant per message, each string value, and a constant
    # per conversation (the reply primer).
    per_message, per_conversation = _chat_frame(name)
    return per_conversation + sum(per_message + sum(_count_text(name, v) for v in m.values() if v) for m in messages)


@functools.lru_cache(maxsize=4096)
def _count_text(model: str, text: str) -> int:
    # A job's system prompt repeats in every unit, and its answers (a label, `{}`) in many: each
    # distinct one is counted once.
    return _text_counter(model)(text)


@functools.cache
def _text_counter(model: str) -> Callable[[str], int]:
    """LiteLLM's count function for `model`, looked up once. `token_counter` looks it up on every
    call, which took ~0.1 ms against a few µs of counting, a fifth of a large job's driver time
    (docs/scale.md). Should a LiteLLM release move it, counting goes through `token_counter`."""
    litellm_module()  # the package before its submodule (see litellm_module)
    try:
        from litellm.litellm_core_utils.token_counter import _get_count_function

        return _get_count_function(model)
    except ImportError:
        return lambda text: int(litellm_module().token_counter(model=model, text=text))


@functools.cache
def _chat_frame(model: str) -> tuple[int, int]:
    """(tokens per message, tokens per conversation) as LiteLLM adds them for `model`."""
    count = litellm_module().token_counter
    per_conversation = int(count(model=model, messages=[]))
    return int(count(model=model, messages=[{"role": ""}])) - per_conversation, per_conversation
