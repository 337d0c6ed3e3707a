"""Tools an agent job may call: the registry, sandboxed execution, MCP sources, side-effect ledger."""

from tools.registry import (
    FINAL_ANSWER,
    NO_TOOL,
    Tool,
    ToolError,
    ToolRegistry,
    call_schema,
    from_callable,
    pseudo_tool,
    tool,
)

__all__ = [
    "FINAL_ANSWER",
    "NO_TOOL",
    "Tool",
    "ToolError",
    "ToolRegistry",
    "call_schema",
    "from_callable",
    "pseudo_tool",
    "tool",
]
