"""MCP servers as tool sources (tools.mcp), against a real SDK server (tests.support.mcp_server)
over stdio and over streamable HTTP on 127.0.0.1.

Each stdio source runs its own server process; the HTTP server is one subprocess for the module,
stopped by PID. Nothing here is slow: a stdio start is ~0.5 s, the slowest test ~3 s.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
from pydantic import ValidationError

from tests.support.ports import free_ports
from tools.mcp import MCPServer, MCPSource
from tools.registry import ToolError, ToolRegistry

REPO = Path(__file__).resolve().parents[2]
SERVER = ["python", "-m", "tests.support.mcp_server"]
TOOLS = {"add", "lookup_city", "sleep", "record_note", "env_has"}


def _stdio(**overrides) -> MCPServer:
    return MCPServer(**{"name": "local", "command": SERVER, "cwd": str(REPO), **overrides})


def _children() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture(scope="module")
def http_url() -> Iterator[str]:
    port = free_ports(1)[0]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.mcp_server", "--http", str(port)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, "the MCP HTTP server exited during startup"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the MCP HTTP server did not listen within 30 s"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(params=["stdio", "http"])
def source(request, http_url) -> Iterator[MCPSource]:
    server = _stdio() if request.param == "stdio" else MCPServer(name="remote", url=http_url)
    with MCPSource(server) as src:
        yield src


def test_lists_tools_with_schemas_and_side_effect_flags(source: MCPSource):
    tools = {t.name: t for t in source.tools}
    assert set(tools) == TOOLS
    add = tools["add"]
    assert add.description == "Add two integers."
    assert add.parameters == {
        "type": "object",
        "required": ["a", "b"],
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
    }
    assert add.source == source.source and add.args_model is None and add.timeout_s == 10.0
    # readOnlyHint true on all but record_note, which declares nothing: unknown means side effects.
    assert {n for n, t in tools.items() if t.side_effects} == {"record_note"}
    registry = ToolRegistry(source.tools)
    assert [t.name for t in registry.select(["lookup_city", "add"])] == ["lookup_city", "add"]
    assert registry.get("add").validate({"a": "not checked here"}) == {"a": "not checked here"}


def test_calls_return_structured_and_json_text_content(source: MCPSource):
    # `add` has an output schema: structuredContent, which the SDK wraps as {"result": ...}.
    added = source.call("add", {"a": 2, "b": 40}, timeout_s=5)
    assert added.ok and added.content == {"result": 42} and added.error is None
    assert 0 < added.duration_s < 5
    # `lookup_city` returns a bare dict: one JSON text block, parsed.
    city = source.call("lookup_city", {"code": "sfo"}, timeout_s=5)
    assert city.ok and city.content == {"code": "SFO", "city": "San Francisco"}


def test_tool_errors_are_observations(source: MCPSource):
    unknown = source.call("lookup_city", {"code": "XXX"}, timeout_s=5)
    assert not unknown.ok and unknown.content is None
    assert "unknown airport code 'XXX'" in unknown.error
    invalid = source.call("add", {"a": "many", "b": 1}, timeout_s=5)
    assert not invalid.ok and "valid integer" in invalid.error
    missing = source.call("no_such_tool", {}, timeout_s=5)
    assert not missing.ok and "no_such_tool" in missing.error


def test_timeout_is_an_observation_and_the_source_stays_usable(source: MCPSource):
    slow = source.call("sleep", {"seconds": 5}, timeout_s=0.5)
    assert not slow.ok and slow.error == "timed out after 0.5s"
    assert 0.5 <= slow.duration_s < 2
    after = source.call("add", {"a": 1, "b": 1}, timeout_s=5)
    assert after.ok and after.content == {"result": 2}


def test_calls_from_many_threads_share_one_session(source: MCPSource):
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        naps = [pool.submit(source.call, "sleep", {"seconds": 0.5}, 5) for _ in range(4)]
        sums = [pool.submit(source.call, "add", {"a": i, "b": i}, 5) for i in range(16)]
        assert [f.result().content for f in sums] == [{"result": 2 * i} for i in range(16)]
        assert all(f.result().ok for f in naps)
    assert time.monotonic() - started < 2  # the naps overlapped rather than queued


def test_stdio_server_sees_only_the_spec_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SLMFLOW_SECRET_PROBE", "xyz")
    notes = tmp_path / "notes.txt"
    with MCPSource(_stdio(env={"MCP_NOTES_FILE": str(notes)})) as src:
        assert src.call("env_has", {"name": "SLMFLOW_SECRET_PROBE"}, 5).content == {"result": False}
        assert src.call("env_has", {"name": "MCP_NOTES_FILE"}, 5).content == {"result": True}
        assert src.call("env_has", {"name": "PATH"}, 5).content == {"result": True}
        noted = src.call("record_note", {"text": "refund #W1001"}, 5)
        assert noted.ok and noted.content == {"result": "noted"}
    assert notes.read_text() == "refund #W1001\n"


def test_close_leaves_no_server_process_or_thread():
    before = _children()
    src = MCPSource(_stdio())
    src.start()
    spawned = _children() - before
    assert len(spawned) == 1
    src.close()
    src.close()  # idempotent
    assert all(_gone(pid) for pid in spawned)
    assert not [t for t in threading.enumerate() if t.name == "mcp-local"]
    closed = src.call("add", {"a": 1, "b": 2}, 5)
    assert not closed.ok and "not connected" in closed.error


def test_dead_server_is_reported_on_every_call():
    before = _children()
    with MCPSource(_stdio()) as src:
        (pid,) = _children() - before
        psutil.Process(pid).kill()  # not waited on here: the SDK's asyncio watcher reaps it
        deadline = time.monotonic() + 5
        while (obs := src.call("add", {"a": 1, "b": 2}, 5)).ok:
            assert time.monotonic() < deadline, "calls kept succeeding after the server died"
            time.sleep(0.05)
        assert obs.error == "mcp:local is unavailable: the connection closed"
        again = src.call("lookup_city", {"code": "SFO"}, 5)
        assert not again.ok and again.error == obs.error
    assert _gone(pid)


def test_start_failures_raise_tool_error_and_clean_up():
    before = _children()
    with pytest.raises(ToolError, match=r"mcp:broken: cannot connect"):
        MCPSource(MCPServer(name="broken", command=["python", "-c", "raise SystemExit(3)"])).start()
    with pytest.raises(ToolError, match=r"cannot connect: FileNotFoundError"):
        MCPSource(MCPServer(name="broken", command=["/nonexistent/mcp-server"])).start()
    # Never answers the handshake: the connect deadline ends it, and the process goes too.
    with pytest.raises(ToolError, match=r"no tool list within 1s"):
        MCPSource(
            MCPServer(name="broken", command=["python", "-c", "import time; time.sleep(60)"], timeout_s=1)
        ).start()
    with pytest.raises(ToolError, match=r"cannot connect: ConnectError"):
        MCPSource(MCPServer(name="broken", url=f"http://127.0.0.1:{free_ports(1)[0]}/mcp", timeout_s=3)).start()
    assert all(_gone(pid) for pid in _children() - before)
    assert not [t for t in threading.enumerate() if t.name == "mcp-broken"]


def test_tool_names_the_registry_refuses_fail_start():
    before = _children()
    src = MCPSource(_stdio(env={"MCP_TOOL_ALIAS": "final_answer"}))
    with pytest.raises(ToolError, match=r"mcp:local: tool names \['final_answer'\] are not allowed"):
        src.start()
    assert all(_gone(pid) for pid in _children() - before)
    with pytest.raises(ToolError, match="starts once"):
        src.start()


def test_python_command_runs_under_this_interpreter():
    before = _children()
    with MCPSource(_stdio()) as src:
        (pid,) = _children() - before
        assert psutil.Process(pid).exe() == os.path.realpath(sys.executable)
        assert src.call("add", {"a": 1, "b": 2}, 5).ok


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"name": "x"}, "exactly one of `command`"),
        ({"name": "x", "command": ["srv"], "url": "http://127.0.0.1:1/mcp"}, "exactly one of `command`"),
        ({"name": "x", "command": []}, "at least 1 item"),
        ({"name": "has space", "command": ["srv"]}, "should match pattern"),
        ({"name": "x", "url": "ftp://host/mcp"}, "url must be http:// or https://"),
        ({"name": "x", "url": "http://host/mcp", "env": {"A": "1"}}, "env and cwd apply only to a stdio"),
        ({"name": "x", "command": ["srv"], "timeout_s": 0}, "greater than 0"),
        ({"name": "x", "command": ["srv"], "args": ["--v"]}, "Extra inputs are not permitted"),
    ],
)
def test_server_spec_validation(spec, message):
    with pytest.raises(ValidationError, match=message):
        MCPServer(**spec)


def test_server_spec_is_frozen():
    server = MCPServer(name="x", url="https://tools.example.com/mcp")
    assert server.command is None and server.env == {} and server.timeout_s == 30
    with pytest.raises(ValidationError, match="frozen"):
        server.name = "y"
