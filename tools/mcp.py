"""MCP servers as tool sources: a job names a server (stdio or streamable HTTP) and its tools join
the registry, under the same allowlists as Python tools.

    source = MCPSource(MCPServer(name="geo", command=["python", "-m", "geo_server"]))
    for t in source.start():
        registry.add(t)
    observation = source.call("lookup_city", {"code": "SFO"}, timeout_s=10)
    source.close()

The SDK is asyncio (anyio) code, and the flow calls tools synchronously from many threads. So a
source owns one event loop on a daemon thread, and one task on it holds the client session for
the source's whole life: the SDK's transports are task groups and cancel scopes, which must be
entered and left by the same task. Calls are submitted to that loop from any thread.

A call that times out is abandoned with a `notifications/cancelled` to the server (the SDK sends
it), and the session stays usable. A side-effecting tool may still have acted before the cancel
arrived; the effect ledger (`tools.effects`) decides what to do about that, not this module.
A server that goes away (its process exits, its HTTP endpoint stops answering) leaves the source
dead: every later call is an ok=False observation that says so, and a new source reconnects.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import sys
import threading
import time
from concurrent.futures import Future, wait
from typing import Any, Self

import anyio
from mcp import Client, StdioServerParameters, stdio_client
from mcp.client import Transport
from mcp.shared.exceptions import MCPError
from mcp.types import CONNECTION_CLOSED, CallToolResult, TextContent
from mcp.types import Tool as MCPTool
from pydantic import BaseModel, ConfigDict, Field, model_validator

from slmflow.core.records import Observation
from tools.registry import RESERVED, Tool, ToolError, allowed_name, strip_titles

# A server that pages forever must not hang start().
_MAX_PAGES = 100
# How long close() waits for the session to wind down. The SDK's stdio shutdown is bounded by
# about 6.5 s (stdin close, 2 s grace, SIGTERM, 2 s, SIGKILL, 2 s); HTTP sends one DELETE.
_CLOSE_S = 10.0
# The in-loop deadline is authoritative; this is the backstop for a wedged loop.
_GRACE_S = 5.0


class MCPServer(BaseModel):
    """An MCP server a job draws tools from: a command to run (stdio) or a URL (streamable HTTP)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_-]+$")
    command: list[str] | None = Field(None, min_length=1)
    url: str | None = None
    # The stdio server's whole environment, beside the SDK's fixed minimum (HOME, LOGNAME, PATH,
    # SHELL, TERM, USER) and the locale: the flow's own environment holds API keys.
    env: dict[str, str] = {}
    cwd: str | None = None
    timeout_s: float = Field(30.0, gt=0)  # connect, handshake and tool listing together

    @model_validator(mode="after")
    def _one_transport(self) -> MCPServer:
        if (self.command is None) == (self.url is None):
            raise ValueError(
                f"MCP server {self.name!r}: give exactly one of `command` (a stdio "
                f"server to run) or `url` (a streamable HTTP endpoint)"
            )
        if self.url is not None:
            if not self.url.startswith(("http://", "https://")):
                raise ValueError(f"MCP server {self.name!r}: url must be http:// or https://, got {self.url!r}")
            if self.env or self.cwd is not None:
                raise ValueError(
                    f"MCP server {self.name!r}: env and cwd apply only to a stdio server (`command`), not to a url"
                )
        return self


class MCPSource:
    """One live client session to an MCP server, callable from any thread."""

    def __init__(self, server: MCPServer):
        self.server = server
        self.tools: list[Tool] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._session: Future[None] | None = None
        # The owner task's scope: close() cancels it (on the loop thread); its deadline bounds
        # the connect.
        self._scope: anyio.CancelScope | None = None
        self._client: Client | None = None
        self._dead: str | None = None
        self._closed = False

    @property
    def source(self) -> str:
        return f"mcp:{self.server.name}"

    def start(self) -> list[Tool]:
        """Connect, handshake and list the server's tools. ToolError if any step fails (the source
        is closed then) or a tool's name is one the registry refuses."""
        with self._lock:
            if self._closed or self._loop is not None:
                raise ToolError(f"{self.source}: a source starts once")
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name=f"mcp-{self.server.name}")
            self._thread.start()
        listed: Future[list[MCPTool]] = Future()
        self._session = asyncio.run_coroutine_threadsafe(self._hold(listed), self._loop)
        try:
            found = listed.result(self.server.timeout_s + _GRACE_S)
        except Exception as exc:  # noqa: BLE001 - every way of not connecting is one ToolError
            self.close()
            raise ToolError(f"{self.source}: cannot connect: {_describe(exc)}") from None
        bad = [t.name for t in found if not allowed_name(t.name)]
        if bad:
            self.close()
            raise ToolError(
                f"{self.source}: tool names {bad} are not allowed (letters, digits, _ "
                f"and -, up to 64; reserved: {sorted(RESERVED)})"
            )
        self.tools = [self._tool(t) for t in found]
        return self.tools

    def call(self, name: str, arguments: dict[str, Any], timeout_s: float) -> Observation:
        """Run one tool. Every failure (a tool error, a timeout, a dead server) is an
        Observation with ok=False, never an exception."""
        started = time.monotonic()

        def failed(error: str) -> Observation:
            return Observation(tool=name, ok=False, error=error, duration_s=time.monotonic() - started)

        client, loop = self._client, self._loop
        if self._dead is not None:
            return failed(f"{self.source} is unavailable: {self._dead}")
        if client is None or loop is None or self._closed:
            return failed(f"{self.source} is not connected")
        pending = asyncio.run_coroutine_threadsafe(_call(client, name, arguments, timeout_s), loop)
        try:
            result = pending.result(timeout_s + _GRACE_S)
        except TimeoutError:
            pending.cancel()
            return failed(f"timed out after {timeout_s:g}s")
        except MCPError as exc:
            if exc.code == CONNECTION_CLOSED:
                self._dead = "the connection closed"
                return failed(f"{self.source} is unavailable: {self._dead}")
            return failed(f"MCP error {exc.code}: {exc.message}")
        except Exception as exc:  # noqa: BLE001 - a broken transport or malformed result: the call failed
            return failed(_describe(exc))
        if result.is_error:
            return failed(_text(result) or "the tool reported an error")
        content = result.structured_content if result.structured_content is not None else _content(result)
        return Observation(tool=name, ok=True, content=content, duration_s=time.monotonic() - started)

    def close(self) -> None:
        """End the session (a stdio server's process exits or is killed) and the loop thread.
        Safe to call more than once and from any thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, thread, session = self._loop, self._thread, self._session
        self._client = None
        if loop is None or thread is None:
            return
        if session is not None:
            loop.call_soon_threadsafe(self._cancel)
            wait([session], _CLOSE_S)  # its own failure, if any, is already in self._dead
        loop.call_soon_threadsafe(loop.stop)
        thread.join(_CLOSE_S)
        if not thread.is_alive():
            loop.close()

    def __enter__(self) -> Self:
        if self._loop is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def _hold(self, listed: Future[list[MCPTool]]) -> None:
        """The session's owner task: connects, lists, then waits until close() cancels it."""
        try:
            with anyio.CancelScope(deadline=anyio.current_time() + self.server.timeout_s) as scope:
                self._scope = scope
                if self._closed:  # close() ran before this task did; _cancel found no scope
                    scope.cancel()
                # cache=None: the listing must be the server's current one, not a cached page.
                async with Client(self._target(), cache=None) as client:
                    found = await _list_tools(client)
                    scope.deadline = math.inf
                    self._client = client
                    listed.set_result(found)
                    await anyio.sleep_forever()
        except Exception as exc:  # noqa: BLE001 - whatever ended the session is why it is dead
            self._dead = _describe(exc)
            if not listed.done():
                listed.set_exception(exc)
        finally:
            self._client = None
            if not listed.done():  # the deadline passed, or close() came first
                listed.set_exception(TimeoutError(f"no tool list within {self.server.timeout_s:g}s"))

    def _cancel(self) -> None:
        if self._scope is not None:
            self._scope.cancel()

    def _target(self) -> Transport | str:
        if self.server.url is not None:
            return self.server.url
        command = list(self.server.command or ())
        if command[0] in ("python", "python3"):
            command[0] = sys.executable  # the flow's venv, not whatever python is first on PATH
        # The SDK adds HOME, LOGNAME, PATH, SHELL, TERM and USER to whatever env it is given.
        env = {k: os.environ[k] for k in ("LANG", "LC_ALL") if k in os.environ} | self.server.env
        params = StdioServerParameters(command=command[0], args=command[1:], env=env, cwd=self.server.cwd)
        # The server's log lines go to the process's real stderr: the SDK's default is the
        # sys.stderr of import time, and a replaced one (pytest's capsys, a logging shim) may
        # have no file descriptor for the child to inherit.
        return stdio_client(params, errlog=sys.__stderr__ or sys.stderr)

    def _tool(self, listed: MCPTool) -> Tool:
        annotations = listed.annotations
        read_only = annotations is not None and annotations.read_only_hint is True
        return Tool(
            name=listed.name,
            description=listed.description or listed.title or listed.name.replace("_", " "),
            parameters=strip_titles(listed.input_schema),
            # The spec's default for readOnlyHint is false: unknown means side effects.
            side_effects=not read_only,
            source=self.source,
            args_model=None,
        )


async def _list_tools(client: Client) -> list[MCPTool]:
    found: list[MCPTool] = []
    cursor: str | None = None
    for _ in range(_MAX_PAGES):
        page = await client.list_tools(cursor=cursor)
        found.extend(page.tools)
        if not page.next_cursor or page.next_cursor == cursor:
            return found
        cursor = page.next_cursor
    raise ToolError(f"the server's tool list runs past {_MAX_PAGES} pages")


async def _call(client: Client, name: str, arguments: dict[str, Any], timeout_s: float) -> CallToolResult:
    # fail_after, not the SDK's read timeout: it also bounds the write and the output-schema
    # check (which may re-list tools), and its cancellation still sends notifications/cancelled.
    with anyio.fail_after(timeout_s):
        return await client.call_tool(name, arguments)


def _text(result: CallToolResult) -> str:
    return "\n".join(
        block.text if isinstance(block, TextContent) else f"[{block.type} content omitted]" for block in result.content
    )


def _content(result: CallToolResult) -> Any:
    """A lone text block is usually a JSON document the server serialised; the model should see
    the value, not a quoted string of it."""
    text = _text(result)
    if len(result.content) == 1 and isinstance(result.content[0], TextContent):
        try:
            return json.loads(text)
        except ValueError:
            pass
    return text


def _describe(exc: BaseException) -> str:
    """The first real error inside the SDK's exception groups, as one line."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
