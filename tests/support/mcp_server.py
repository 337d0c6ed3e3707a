"""A real MCP server for tests, built on the official SDK's server API.

    python -m tests.support.mcp_server              # stdio
    python -m tests.support.mcp_server --http 8765  # streamable HTTP on 127.0.0.1:8765/mcp

Each tool exercises one path of `tools.mcp`: structured results (`add`, `lookup_city`), a tool
error (`lookup_city` with an unknown code), timeouts (`sleep`), a side effect the test can observe
(`record_note` writes to $MCP_NOTES_FILE) and environment isolation (`env_has`).
$MCP_TOOL_ALIAS offers `add` under one more name.
"""

from __future__ import annotations

import argparse
import asyncio
import os

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

READ_ONLY = ToolAnnotations(read_only_hint=True)
CITIES = {"SFO": "San Francisco", "JFK": "New York", "CDG": "Paris"}

# WARNING keeps the per-request INFO lines out of the test output (stderr is inherited).
server = MCPServer("slmflow-test", log_level="WARNING")


@server.tool(annotations=READ_ONLY)
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool(annotations=READ_ONLY)
def lookup_city(code: str) -> dict:
    """The city an airport code serves."""
    code = code.upper()
    if code not in CITIES:
        # Only a ToolError's message reaches the client; any other exception is redacted to
        # "Error executing tool ...".
        raise ToolError(f"unknown airport code {code!r}")
    return {"code": code, "city": CITIES[code]}


@server.tool(annotations=READ_ONLY)
async def sleep(seconds: float) -> str:
    """Wait, then say so."""
    await asyncio.sleep(seconds)
    return f"slept {seconds}s"


@server.tool()
def record_note(text: str) -> str:
    """Append a line to the notes file."""
    with open(os.environ["MCP_NOTES_FILE"], "a", encoding="utf-8") as f:
        f.write(text + "\n")
    return "noted"


@server.tool(annotations=READ_ONLY)
def env_has(name: str) -> bool:
    """Whether the server's environment defines a variable."""
    return name in os.environ


# Lets a test offer a tool under a name the slmflow registry refuses (such as "final_answer").
if alias := os.environ.get("MCP_TOOL_ALIAS"):
    server.add_tool(add, name=alias, annotations=READ_ONLY)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--http", type=int, metavar="PORT", help="serve streamable HTTP on 127.0.0.1:PORT")
    args = parser.parse_args()
    if args.http is None:
        server.run("stdio")
    else:
        server.run("streamable-http", host="127.0.0.1", port=args.http)


if __name__ == "__main__":
    main()
