"""A job's tools: the registry built from the spec's sources, every allowlist checked against it,
and the executor the run's units call through.

Python sources are imported when the spec is loaded, so an unknown tool in an allowlist is a spec
error before anything runs. MCP servers are started when the run opens its tools, still before
any model call; their tools are checked then.
"""

from __future__ import annotations

from pathlib import Path

from flows.spec import Job, SpecError, check_allowlists, python_registry
from slmflow.core.settings import Settings
from tools.effects import EffectLedger
from tools.executor import ToolExecutor
from tools.mcp import MCPSource
from tools.registry import ToolError


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
        check_allowlists(job, registry)
    except (ToolError, OSError) as exc:
        for mcp in sources.values():
            mcp.close()
        raise SpecError(f"job '{job.spec.name}', tools: {exc}") from None
    return ToolExecutor(
        registry,
        tool_workdir(job, settings),
        EffectLedger(effects_path(settings)),
        sources,
        hosts_per_pool=settings.tool_hosts,
    )


def tool_workdir(job: Job, settings: Settings) -> Path:
    configured = job.spec.tools.workdir if job.spec.tools else None
    if configured is not None:
        return (job.base_dir / configured).resolve()
    return settings.state_dir / "tools" / job.spec.name


def effects_path(settings: Settings) -> Path:
    return settings.state_dir / "tools" / "effects.sqlite"
