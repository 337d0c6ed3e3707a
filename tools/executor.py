"""Run a verified tool call and turn whatever happens into an `Observation`.

The executor is the second lock on the allowlist (the verifier is the first): a call to a tool the
task does not list is refused here too, whatever the verdict said. Python tools run in pooled
sandboxed hosts (tools.host), one pool per privilege set; MCP tools go to their server's session
(tools.mcp). Side-effecting calls pass the ledger (tools.effects) first. Nothing a tool does
raises out of `call`.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

from slmflow.core.records import Observation, ToolCall
from tools.effects import EffectLedger, effect_key
from tools.host import HostDied, ToolHost
from tools.registry import Tool, ToolError, ToolRegistry

if TYPE_CHECKING:
    from tools.mcp import MCPSource


def _code_roots(registry: ToolRegistry) -> set[str]:
    """The folders the host imports from: this package's and each Python tool's module's."""
    import tools

    roots = {str(Path(tools.__file__).resolve().parent.parent)}
    for name in registry.names:
        source = registry.get(name).source
        if source.startswith("python:"):
            module = sys.modules.get(source.split(":")[1])
            path = getattr(module, "__file__", None)
            if path:
                roots.add(str(Path(path).resolve().parent))
    return roots


class ToolExecutor:
    def __init__(
        self,
        registry: ToolRegistry,
        workdir: Path,
        effects: EffectLedger | None = None,
        mcp: dict[str, MCPSource] | None = None,
        hosts_per_pool: int = 2,
        sys_path: list[str] | None = None,
    ):
        self.registry = registry
        self.workdir = workdir.resolve()
        self.effects = effects
        self.mcp = mcp or {}
        self._hosts_per_pool = hosts_per_pool
        # The flow's import path, so that hosts import tool modules exactly as the flow did.
        self._sys_path = [p for p in (sys_path if sys_path is not None else sys.path) if p]
        self._code_roots = sorted(_code_roots(registry))
        self._idle: dict[tuple[bool, bool, bool], list[ToolHost]] = {}
        self._started: dict[tuple[bool, bool, bool], int] = {}
        self._all: list[ToolHost] = []
        self._cond = threading.Condition()
        self._closed = False

    def call(self, call: ToolCall, allowed: Collection[str], scope: str) -> Observation:
        """Run `call` if `allowed` lists it. `scope` (job/item/task) keys side effects."""
        if call.name not in allowed:
            return Observation(
                tool=call.name,
                ok=False,
                error=f"tool {call.name!r} is not allowed for this task; allowed: {sorted(allowed)}",
            )
        try:
            tool = self.registry.get(call.name)
            arguments = tool.validate(call.arguments)
        except ToolError as exc:
            return Observation(tool=call.name, ok=False, error=str(exc))
        call = ToolCall(name=call.name, arguments=arguments)
        if not (tool.side_effects and self.effects):
            return self._run(tool, call)[0]
        key = effect_key(scope, call)
        recorded = self.effects.begin(key, scope, call)
        if recorded is not None:
            return recorded
        observation, known = self._run(tool, call)
        if known:
            # Otherwise (a timeout, a host that died mid-call) the effect may or may not have
            # happened: it stays 'started', and a later attempt is told so instead of running it.
            self.effects.finish(key, observation)
        return observation

    def _run(self, tool: Tool, call: ToolCall) -> tuple[Observation, bool]:
        """The observation, and whether the tool's outcome is known: it returned or raised."""
        if tool.source.startswith("mcp:"):
            server = tool.source.removeprefix("mcp:")
            observation = self.mcp[server].call(tool.name, call.arguments, tool.timeout_s)
            return observation, not (observation.error or "").startswith("timed out")
        start = time.perf_counter()
        fn = tool.source.removeprefix("python:")
        host = self._acquire(tool.privileges)
        healthy = False
        try:
            answer = host.call(fn, call.arguments, tool.timeout_s)
            healthy = True
        except TimeoutError:
            answer = {"ok": False, "error": f"timed out after {tool.timeout_s:g} s"}
        except HostDied as exc:
            answer = {"ok": False, "error": str(exc)}
        finally:
            self._release(tool.privileges, host, healthy)
        return Observation(
            tool=tool.name,
            ok=answer["ok"],
            content=answer.get("result"),
            error=answer.get("error"),
            duration_s=time.perf_counter() - start,
        ), healthy

    def _acquire(self, privileges: tuple[bool, bool, bool]) -> ToolHost:
        with self._cond:
            while True:
                if self._closed:
                    raise HostDied("the tool executor is closed")
                idle = self._idle.setdefault(privileges, [])
                if idle:
                    return idle.pop()
                if self._started.get(privileges, 0) < self._hosts_per_pool:
                    self._started[privileges] = self._started.get(privileges, 0) + 1
                    break
                self._cond.wait()
        try:
            host = ToolHost(self.workdir, privileges, self._sys_path, self._code_roots)
        except BaseException:
            self._release(privileges, None, False)
            raise
        with self._cond:
            self._all.append(host)
        return host

    def _release(self, privileges: tuple[bool, bool, bool], host: ToolHost | None, healthy: bool) -> None:
        """A host that timed out or died is killed; the pool starts a fresh one when needed."""
        if host is not None and not healthy:
            host.kill()
        with self._cond:
            if host is not None and healthy and host.alive() and not self._closed:
                self._idle[privileges].append(host)
            else:
                self._started[privileges] -= 1
                if host is not None and host in self._all:
                    self._all.remove(host)
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            hosts, self._all = self._all, []
            self._idle.clear()
            self._cond.notify_all()
        for host in hosts:
            host.kill()
        for source in self.mcp.values():
            source.close()
        if self.effects:
            self.effects.close()

    def __enter__(self) -> ToolExecutor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
