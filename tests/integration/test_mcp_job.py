"""An MCP server named in a job spec: its tools join the registry under the same allowlist, and a
verified tool_call unit reaches the real server (stdio) through the executor."""

import sys
from pathlib import Path

import pytest

from flows.cascade import UnitContext
from flows.ledger import Ledger
from flows.spec import SpecError, build_job
from flows.tooling import open_tools
from flows.unit import execute_unit
from slmflow.core.records import Status
from slmflow.core.settings import Settings
from tests.support.fakes import SETTINGS, Scripted, call

ROOT = Path(__file__).resolve().parents[2]


def _spec(tools, python="tests.support.sample_tools:norm"):
    return {
        "name": "mcp-job",
        "inputs": {"items": [{"id": "1", "q": "Add 2 and 40."}]},
        "tools": {
            "sources": [
                {"function": python},
                {
                    "mcp": {
                        "name": "calc",
                        "command": [sys.executable, "-m", "tests.support.mcp_server"],
                        "cwd": str(ROOT),
                    }
                },
            ]
        },
        "tasks": [{"id": "t", "kind": "tool_call", "prompt": "{{ item.q }}", "tools": tools}],
    }


def test_mcp_tools_join_the_allowlisted_registry(tmp_path):
    settings = Settings(state_dir=tmp_path)
    job = build_job(_spec(["add"], python="tests.support.sample_tools:add"), ROOT)
    with pytest.raises(SpecError, match="add"):
        # Both sources define `add`: an ambiguous name is refused, not silently shadowed.
        open_tools(job, settings)
    job = build_job(_spec(["lookup_city"]), ROOT)
    tools = open_tools(job, settings)
    try:
        assert tools.registry.get("lookup_city").source == "mcp:calc"
        ctx = UnitContext(
            "mcp-job",
            "run",
            Scripted([call("lookup_city", code="SFO")], [call("lookup_city", code="SFO")]),
            Ledger(SETTINGS, "big"),
            tools=tools,
        )
        r = execute_unit(ctx, job.spec.task("t"), next(job.iter_items()), {})
        # "SFO" is not in the request, so the verifier rejects both calls; nothing ran.
        assert r.status is Status.needs_review
        job = build_job({**_spec(["lookup_city"]), "inputs": {"items": [{"id": "1", "q": "Which city is SFO?"}]}}, ROOT)
        ctx.workers = Scripted([call("lookup_city", code="SFO")])
        r = execute_unit(ctx, job.spec.task("t"), next(job.iter_items()), {})
        assert r.status is Status.accepted
        assert r.output["observation"]["content"]["city"] == "San Francisco"
    finally:
        tools.close()
    with pytest.raises(SpecError, match=r"unknown tools \['nope'\]"):
        open_tools(build_job(_spec(["nope"]), ROOT), settings)
