"""Background services this tool starts (Prefect server, frontier stand-in, ...), tracked by PID.

Each service runs in its own session, so stopping it signals exactly its process group and
nothing else on the host. Its PID, URL and log path are kept in a small JSON file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from slmflow.core.state import Service, healthy, read, state_path


class ServiceError(RuntimeError):
    pass


def start(
    state_dir: Path,
    name: str,
    cmd: list[str],
    *,
    url: str,
    health_url: str,
    env: dict[str, str] | None = None,
    timeout_s: float = 180.0,
    cwd: Path | None = None,
) -> Service:
    """Start `cmd` unless a healthy instance is already recorded; wait until it is healthy."""
    existing = read(state_dir, name)
    if existing and existing.healthy:
        return existing
    if existing and existing.alive:
        stop(state_dir, name)
    state_dir.mkdir(parents=True, exist_ok=True)
    log = state_dir / f"{name}.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            start_new_session=True,
            cwd=cwd,
        )
    service = Service(name=name, pid=proc.pid, url=url, health_url=health_url, log=str(log))
    state_path(state_dir, name).write_text(service.model_dump_json())
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            state_path(state_dir, name).unlink(missing_ok=True)
            raise ServiceError(f"{name} exited with code {proc.returncode}; see {log}")
        if healthy(health_url):
            return service
        time.sleep(0.5)
    stop(state_dir, name)
    raise ServiceError(f"{name} was not healthy after {timeout_s:.0f} s; see {log}")


def stop(state_dir: Path, name: str, grace_s: float = 20.0) -> bool:
    """SIGTERM the service's process group, SIGKILL what is left of it after a grace period.
    True if it was running."""
    service = read(state_dir, name)
    if service is None:
        return False
    ran = service.alive
    if ran:
        _signal_group(service.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while service.alive and time.monotonic() < deadline:
            time.sleep(0.2)
        _signal_group(service.pid, signal.SIGKILL)
        _reap(service.pid)
    state_path(state_dir, name).unlink(missing_ok=True)
    return ran


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # the service leads its own session, so its group id is its PID
    except ProcessLookupError:
        pass


def _reap(pid: int) -> None:
    """Collect the leader's exit status if we are its parent, so it does not linger as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
