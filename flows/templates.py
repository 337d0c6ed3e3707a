"""Prompt templates: Jinja2, sandboxed, strict about undefined names.

A template may reference `item` (the input record), `upstream` (outputs of the tasks it
depends on) and `evidence` (retrieved chunks, for grounded tasks). Anything else is rejected
when the spec is loaded, not when the first model call is made.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, nodes
from jinja2.sandbox import SandboxedEnvironment

ALLOWED_NAMES = frozenset({"item", "upstream", "evidence"})

_env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)


class TemplateError(ValueError):
    pass


@lru_cache(maxsize=1024)
def _compile(source: str):
    return _env.from_string(source)


def check_template(source: str, depends_on: list[str]) -> None:
    """Reject syntax errors, unknown top-level names and `upstream.X` for X not in depends_on."""
    try:
        ast = _env.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"syntax error on line {exc.lineno}: {exc.message}") from None
    names = {n.name for n in ast.find_all(nodes.Name) if n.ctx == "load"}
    unknown = names - ALLOWED_NAMES - _locally_bound(ast)
    if unknown:
        raise TemplateError(f"unknown variable(s) {sorted(unknown)}; templates may use {sorted(ALLOWED_NAMES)}")
    for ref in _upstream_refs(ast):
        if ref not in depends_on:
            raise TemplateError(f"references upstream.{ref} but '{ref}' is not in depends_on")


def _locally_bound(ast: nodes.Template) -> set[str]:
    bound: set[str] = set()
    for node in ast.find_all((nodes.For, nodes.Assign)):
        target = node.target  # type: ignore[attr-defined]  # both node types carry a target
        for name in [target, *target.find_all(nodes.Name)]:
            if isinstance(name, nodes.Name):
                bound.add(name.name)
    return bound


def _upstream_refs(ast: nodes.Template) -> set[str]:
    refs = set()
    for attr in ast.find_all(nodes.Getattr):
        if isinstance(attr.node, nodes.Name) and attr.node.name == "upstream":
            refs.add(attr.attr)
    for item in ast.find_all(nodes.Getitem):
        if isinstance(item.node, nodes.Name) and item.node.name == "upstream" and isinstance(item.arg, nodes.Const):
            refs.add(str(item.arg.value))
    return refs


def render(source: str, **context: Any) -> str:
    try:
        return _compile(source).render(**context).strip()
    except Exception as exc:  # jinja raises UndefinedError, TypeError, SecurityError, ...
        raise TemplateError(str(exc)) from None


class Placeholder:
    """Stands in for an upstream output while checking templates against items before a run."""

    def __getattr__(self, name: str) -> Placeholder:
        return self

    def __getitem__(self, key: Any) -> Placeholder:
        return self

    def __iter__(self):
        return iter(())

    def __str__(self) -> str:
        return "<upstream>"
