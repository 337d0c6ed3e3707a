"""A job's tools: the registry built from the spec's sources, every allowlist checked against it,
and the executor the run's units call through.

Python sources are imported when the spec is loaded, so an unknown tool in an allowlist is a spec
error before anything runs. MCP servers are started when the run opens its tools, still before
any model call; their tools are checked then.
"""

from __future__ import annotations

import sys
from pathlib import Path

from flows.spec import Job, SpecError
from slmflow.settings import Settings
from tools.effects import EffectLedger
from tools.executor import ToolExecutor
from tools.mcp import MCPSource
from tools.registry import ToolError, ToolRegistry


def python_registry(job: Job) -> ToolRegistry:
    """The spec's Python tools. Module paths resolve against the spec's folder first, so a job's
    own tool module needs no installing."""
    base = str(job.base_dir)
    if base not in sys.path:
        sys.path.insert(0, base)
    registry = ToolRegistry()
    for i, source in enumerate(job.spec.tools.sources):
        try:
            if source.module:
                registry.add_module(source.module)
            elif source.function:
                registry.add_function(source.function)
        except ToolError as exc:
            raise SpecError(f"job '{job.spec.name}', tools.sources[{i}]: {exc}") from None
    return registry


def check_python_tools(job: Job) -> None:
    """With no MCP sources, every allowlist can be checked now."""
    registry = python_registry(job)
    if not any(s.mcp for s in job.spec.tools.sources):
        _check_allowlists(job, registry)


def open_tools(job: Job, settings: Settings) -> ToolExecutor | None:
    """Start the MCP servers, complete the registry, check it, and return the run's executor
    (close it when the run ends). None for a job without tools."""
    if job.spec.tools is None:
        return None
    registry = python_registry(job)
    sources: dict[str, MCPSource] = {}
    try:
        for source in job.spec.tools.sources:
            if source.mcp:
                sources[source.mcp.name] = mcp = MCPSource(source.mcp)
                for t in mcp.start():
                    registry.add(t)
        _check_allowlists(job, registry)
    except (ToolError, OSError) as exc:
        for mcp in sources.values():
            mcp.close()
        raise SpecError(f"job '{job.spec.name}', tools: {exc}") from None
    return ToolExecutor(registry, tool_workdir(job, settings), EffectLedger(effects_path(settings)), sources,
                        hosts_per_pool=settings.tool_hosts)


def tool_workdir(job: Job, settings: Settings) -> Path:
    configured = job.spec.tools.workdir if job.spec.tools else None
    if configured is not None:
        return (job.base_dir / configured).resolve()
    return settings.state_dir / "tools" / job.spec.name


def effects_path(settings: Settings) -> Path:
    return settings.state_dir / "tools" / "effects.sqlite"


def _check_allowlists(job: Job, registry: ToolRegistry) -> None:
    for task in job.spec.tasks:
        unknown = [name for name in task.tools or [] if name not in registry]
        if unknown:
            raise SpecError(f"job '{job.spec.name}', task '{task.id}', field 'tools': unknown tools "
                            f"{unknown}; the job's sources provide {registry.names}")
