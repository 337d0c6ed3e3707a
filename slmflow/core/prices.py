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
from collections.abc import Mapping
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
    import litellm  # ~3 s: only where a price or a token count is needed

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
    tiktoken for OpenAI models, the provider's tokenizer where LiteLLM has one, else LiteLLM's default."""
    name = resolve(model, aliases)
    if messages is not None:
        return int(litellm_module().token_counter(model=name, messages=messages))
    return _count_text(name, text) if text else 0


@functools.lru_cache(maxsize=4096)
def _count_text(model: str, text: str) -> int:
    # Answers repeat (a label, a verdict, `{}`): a large job counts each distinct one once.
    return int(litellm_module().token_counter(model=model, text=text))
