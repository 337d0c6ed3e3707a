"""The tau2 domains, and the module whose `@tool` functions serve each."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from functools import cache

from evals.errors import EvalError
from tools.registry import ToolRegistry

DOMAINS = ("airline", "retail")


def check_domain(domain: str) -> str:
    if domain not in DOMAINS:
        raise EvalError(f"unknown tau2 domain {domain!r}; choose one of {', '.join(DOMAINS)}")
    return domain


def tool_module(domain: str) -> str:
    """The import path to give `ToolRegistry.add_module`."""
    return f"evals.tau2.{check_domain(domain)}"


@cache
def domain_tools(domain: str) -> dict[str, Callable]:
    """The domain's tool functions by tool name (what the registry would register)."""
    module = importlib.import_module(tool_module(domain))
    return {t.name: getattr(module, t.source.rsplit(":", 1)[1]) for t in ToolRegistry().add_module(module.__name__)}
