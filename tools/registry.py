"""Tools: plain Python callables with typed signatures, and the registry a job draws them from.

    from tools import tool

    @tool(side_effects=True)
    def issue_refund(order_id: str, amount: float) -> dict:
        '''Refund an order.

        Args:
            order_id: the order, such as '#W1001'.
            amount: how much to refund, in dollars.
        '''

The JSON schema a model sees is derived from the signature (through a pydantic model, which also
validates the arguments a model produces) and the docstring; nobody writes it by hand. MCP
servers add tools to the same registry (`tools.mcp`), under the same allowlists.
"""

from __future__ import annotations

import importlib
import inspect
import re
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

# The explicit "none of these" answer offered next to every tool list (tool_call tasks), and the
# way an agent ends its loop. Neither is a real tool, so no job may register these names.
NO_TOOL = "no_suitable_tool"
FINAL_ANSWER = "final_answer"
RESERVED = frozenset({NO_TOOL, FINAL_ANSWER})
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")  # what the OpenAI tools API accepts
_MARK = "__slmflow_tool__"


def allowed_name(name: str) -> bool:
    """A name the OpenAI tools API accepts and no pseudo-tool uses: for Python and MCP tools alike."""
    return bool(_NAME.match(name)) and name not in RESERVED


class ToolError(ValueError):
    """A tool cannot be registered or found. The message names it."""


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]  # JSON schema of the arguments
    # Changes the world (writes a record, sends a refund): runs only after its call passed
    # verification, and at most once per item and arguments (tools.effects).
    side_effects: bool = False
    timeout_s: float = 10.0
    # Tools run in a sandbox that can reach only the job's tool directory and neither a shell nor
    # the network. A tool that needs more says so here, and runs in a separate host without it.
    allow_filesystem: bool = False
    allow_shell: bool = False
    allow_network: bool = False
    # Where it runs: "python:<module>:<qualname>" or "mcp:<server>".
    source: str = ""
    args_model: type[BaseModel] | None = field(default=None, compare=False, repr=False)

    def openai(self) -> dict[str, Any]:
        """The tool as the OpenAI `tools` API (and vLLM's server) takes it."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }

    def validate(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """The arguments coerced to the signature's types; ToolError says which are wrong."""
        if self.args_model is None:  # an MCP tool: its server validates
            return arguments
        try:
            return self.args_model.model_validate(arguments).model_dump(mode="json")
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or '(arguments)'}: {e['msg']}" for e in exc.errors()[:3]
            )
            raise ToolError(f"{self.name}: invalid arguments: {problems}") from None

    @property
    def privileges(self) -> tuple[bool, bool, bool]:
        return (self.allow_filesystem, self.allow_shell, self.allow_network)


def tool(
    fn: Callable | None = None,
    *,
    name: str | None = None,
    side_effects: bool = False,
    timeout_s: float = 10.0,
    allow_filesystem: bool = False,
    allow_shell: bool = False,
    allow_network: bool = False,
):
    """Mark a function as a tool. The function itself is returned unchanged, so it stays a plain
    callable that tests and other code can call directly."""

    def mark(f: Callable) -> Callable:
        setattr(
            f,
            _MARK,
            dict(
                name=name,
                side_effects=side_effects,
                timeout_s=timeout_s,
                allow_filesystem=allow_filesystem,
                allow_shell=allow_shell,
                allow_network=allow_network,
            ),
        )
        return f

    return mark(fn) if fn is not None else mark


def from_callable(fn: Callable, **options: Any) -> Tool:
    """A Tool from a function's signature and docstring (Google-style `Args:` give the parameter
    descriptions). Options override what a `@tool` decorator set."""
    options = {**getattr(fn, _MARK, {}), **options}
    name = options.pop("name", None) or fn.__name__
    if not allowed_name(name):
        raise ToolError(f"tool name {name!r} is not allowed (letters, digits, _ and -; reserved: {sorted(RESERVED)})")
    summary, arg_docs = _docstring(fn)
    try:
        hints = typing.get_type_hints(fn)
    except (NameError, TypeError) as exc:
        raise ToolError(f"tool {name!r}: cannot resolve its type annotations: {exc}") from None
    fields: dict[str, Any] = {}
    for pname, param in inspect.signature(fn).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ToolError(f"tool {name!r}: *args/**kwargs cannot be described to a model")
        if pname not in hints:
            raise ToolError(f"tool {name!r}: parameter {pname!r} needs a type annotation")
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[pname] = (hints[pname], Field(default, description=arg_docs.get(pname)))
    model = create_model(f"{name}_arguments", __config__=ConfigDict(extra="forbid"), **fields)
    schema = strip_titles(model.model_json_schema())
    module = getattr(fn, "__module__", "?")
    return Tool(
        name=name,
        description=summary or name.replace("_", " "),
        parameters=schema,
        source=f"python:{module}:{fn.__qualname__}",
        args_model=model,
        **options,
    )


class ToolRegistry:
    """Every tool a job may offer, by name. A task sees only its allowlist (`select`)."""

    def __init__(self, tools: Iterable[Tool] = ()):
        self._tools: dict[str, Tool] = {}
        for t in tools:
            self.add(t)

    def add(self, t: Tool) -> Tool:
        if t.name in self._tools and self._tools[t.name] != t:
            raise ToolError(f"two tools are named {t.name!r}: {self._tools[t.name].source} and {t.source}")
        self._tools[t.name] = t
        return t

    def add_module(self, path: str) -> list[Tool]:
        """Every `@tool` function defined in the module at import path `path`."""
        module = _import(path)
        found = [
            self.add(from_callable(obj))
            for obj in vars(module).values()
            if callable(obj) and hasattr(obj, _MARK) and getattr(obj, "__module__", None) == module.__name__
        ]
        if not found:
            raise ToolError(f"module {path!r} defines no @tool functions")
        return found

    def add_function(self, path: str) -> Tool:
        """The function at `module:qualname` (decorated or not)."""
        module_path, sep, qualname = path.partition(":")
        if not sep or not qualname:
            raise ToolError(f"{path!r}: a function import path looks like 'package.module:function'")
        obj: Any = _import(module_path)
        for part in qualname.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                raise ToolError(f"{path!r}: {module_path} has no {qualname!r}")
        if not callable(obj):
            raise ToolError(f"{path!r} is not callable")
        return self.add(from_callable(obj))

    def get(self, name: str) -> Tool:
        try:
            return self._tools[name]
        except KeyError:
            raise ToolError(f"no tool named {name!r}; registered: {sorted(self._tools)}") from None

    def select(self, allowlist: Iterable[str]) -> list[Tool]:
        """The allowlisted tools, in the allowlist's order; unknown names are an error."""
        names = list(allowlist)
        unknown = [n for n in names if n not in self._tools]
        if unknown:
            raise ToolError(f"unknown tools {unknown}; registered: {sorted(self._tools)}")
        return [self._tools[n] for n in names]

    @property
    def names(self) -> list[str]:
        return sorted(self._tools)

    def __contains__(self, name: str) -> bool:
        return name in self._tools

    def __len__(self) -> int:
        return len(self._tools)


def pseudo_tool(name: str) -> Tool:
    """`no_suitable_tool(reason)` or `final_answer(answer)`: offered like tools, never executed."""
    if name == NO_TOOL:
        return Tool(
            name=NO_TOOL,
            description="Call this when none of the other tools can do what is asked.",
            parameters={"type": "object", "properties": {"reason": {"type": "string"}}, "required": ["reason"]},
        )
    if name == FINAL_ANSWER:
        return Tool(
            name=FINAL_ANSWER,
            description="Finish: give the final answer to the request, using what the tools returned.",
            parameters={"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]},
        )
    raise ToolError(f"{name!r} is not a pseudo-tool")


def call_schema(tools: Iterable[Tool]) -> dict[str, Any]:
    """JSON schema for exactly one call {"name", "arguments"} to one of `tools`: what a small
    model's structured output is held to, so it cannot name a tool outside the list."""
    return {
        "anyOf": [
            {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "arguments"],
                "properties": {"name": {"const": t.name}, "arguments": t.parameters},
            }
            for t in tools
        ]
    }


def _import(path: str):
    try:
        return importlib.import_module(path)
    except ImportError as exc:
        raise ToolError(f"cannot import tool module {path!r}: {exc}") from None


def _docstring(fn: Callable) -> tuple[str, dict[str, str]]:
    """(summary, {param: description}) from a Google-style docstring."""
    doc = inspect.getdoc(fn) or ""
    summary = doc.split("\n\n", 1)[0].replace("\n", " ").strip()
    args: dict[str, str] = {}
    section = re.search(r"^(?:Args|Arguments|Parameters):\s*\n(.*?)(?:\n\S|\Z)", doc, re.S | re.M)
    if section:
        current = None
        for line in section.group(1).splitlines():
            m = re.match(r"^\s{2,}(\w+)(?:\s*\([^)]*\))?:\s*(.*)$", line)
            if m and (current is None or len(line) - len(line.lstrip()) <= 4):
                current = m.group(1)
                args[current] = m.group(2).strip()
            elif current and line.strip():
                args[current] += " " + line.strip()
    return summary, args


def strip_titles(schema: Any) -> Any:
    """pydantic titles every field; they add tokens to every prompt and say nothing new."""
    if isinstance(schema, dict):
        return {k: strip_titles(v) for k, v in schema.items() if not (k == "title" and isinstance(v, str))}
    if isinstance(schema, list):
        return [strip_titles(v) for v in schema]
    return schema
