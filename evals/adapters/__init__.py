"""One adapter per dataset; `get_adapter(name)` picks one."""

from __future__ import annotations

from evals.adapters.base import Adapter, Grade, Item, default_data_dir
from evals.adapters.bfcl import BFCL
from evals.adapters.gsm8k import GSM8K
from evals.adapters.hotpotqa import HotpotQA
from evals.adapters.pubmedqa import PubMedQA
from evals.errors import EvalError

ADAPTERS: dict[str, type[Adapter]] = {a.name: a for a in (GSM8K, BFCL, PubMedQA, HotpotQA)}


def get_adapter(name: str) -> Adapter:
    try:
        return ADAPTERS[name]()
    except KeyError:
        raise EvalError(f"unknown dataset {name!r}; choose one of {', '.join(ADAPTERS)}") from None


__all__ = ["ADAPTERS", "Adapter", "Grade", "Item", "default_data_dir", "get_adapter"]
