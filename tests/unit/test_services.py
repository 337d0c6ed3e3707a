"""`slmflow down` returns when everything a service started is gone: processes that moved to a
process group of their own (as Ray's workers do, and vLLM's engine processes with them), ones that
left the session, and ones that ignore SIGTERM. A stand-in for each runs here as a tiny Python
process, so this takes seconds."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from slmflow.cli import services
from slmflow.core.state import service_processes
from tests.support.ports import free_ports

# The leader starts two stubborn processes and writes their PIDs, then serves until SIGTERM:
# one in a process group of its own (Ray's worker), one in a session of its own (a process that
# detached), both ignoring SIGTERM, as a VLLM::Worker busy in a kernel does for a while.
STUBBORN = """
import os, signal, socket, subprocess, sys, time
ignore = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
own_group = subprocess.Popen([sys.executable, "-c", ignore], process_group=0)
own_session = subprocess.Popen([sys.executable, "-c", ignore], start_new_session=True)
open(sys.argv[1], "w").write(f"{own_group.pid} {own_session.pid}")
health = socket.create_server(("127.0.0.1", int(sys.argv[2])))
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def stubborn(tmp_path):
    pids = tmp_path / "pids"
    script = tmp_path / "stubborn.py"
    script.write_text(STUBBORN)
    port = free_ports(1)[0]
    command = [sys.executable, str(script), str(pids), str(port)]
    service = services.start(tmp_path, "stubborn", command, url="-", health_url=f"tcp://127.0.0.1:{port}", timeout_s=60)
    children = [int(p) for p in pids.read_text().split()]
    yield service, children
    for pid in [service.pid, *children]:  # whatever a failed test left
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_everything_the_service_started_is_found(stubborn):
    service, children = stubborn
    assert {service.pid, *children} <= set(service_processes(service.pid))


def test_stop_returns_only_when_every_process_is_gone(tmp_path, stubborn):
    service, children = stubborn
    start = time.monotonic()
    assert services.stop(tmp_path, "stubborn", grace_s=1.0, wait_s=10.0) is True
    took = time.monotonic() - start
    assert not [pid for pid in [service.pid, *children] if _alive(pid)]
    assert took < 10, took  # SIGKILL after the grace period, not a wait for the sleeps to end
    assert services.read(tmp_path, "stubborn") is None
    assert services.stop(tmp_path, "stubborn") is False


def test_a_process_that_outlives_the_wait_is_named(tmp_path, stubborn, monkeypatch):
    service, children = stubborn
    # As if SIGKILL could not end them (a process stuck in the kernel): nothing is signalled.
    monkeypatch.setattr(services, "_kill", lambda pid: None)
    monkeypatch.setattr(services, "_signal_group", lambda pid, sig: None)
    with pytest.raises(services.ServiceError) as err:
        services.stop(tmp_path, "stubborn", grace_s=0.2, wait_s=0.3)
    message = str(err.value)
    assert message.startswith("stubborn: 3 of its processes are still running 0.5 s after it was told to stop")
    assert all(str(pid) in message for pid in [service.pid, *children]) and sys.executable in message
    assert services.read(tmp_path, "stubborn") is not None  # still recorded: a later `down` retries
