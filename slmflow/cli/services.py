"""Background services this tool starts (Prefect server, frontier stand-in, ...), tracked by PID.

Each service runs in its own session, so stopping it signals exactly what it started and nothing
else on the host. Its PID, URL and log path are kept in a small JSON file. Stopping returns only
when every process the service started is gone: a vLLM worker that outlived `slmflow down` by
seconds would meet the next `up` (or a memory check) still holding its memory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from slmflow.core.state import Service, healthy, read, service_processes, state_path


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


def stop(state_dir: Path, name: str, grace_s: float = 20.0, wait_s: float = 30.0) -> bool:
    """SIGTERM the service's process group (its leader shuts down what it runs), SIGKILL whatever
    it started that is still there after `grace_s`, and wait up to `wait_s` more until all of it is
    gone. True if it was running; `ServiceError` naming what is left when something outlives that."""
    service = read(state_dir, name)
    if service is None:
        return False
    # Known from the start: a descendant may be re-parented away once its parent exits.
    started = set(service_processes(service.pid))
    ran = bool(started)
    if ran:
        _signal_group(service.pid, signal.SIGTERM)
        left = _wait_gone(service.pid, started, grace_s)
        for pid in left:
            _kill(pid)
        _signal_group(service.pid, signal.SIGKILL)
        left = _wait_gone(service.pid, started, wait_s)
        if left:
            raise ServiceError(
                f"{name}: {len(left)} of its processes are still running {grace_s + wait_s:g} s after "
                f"it was told to stop: {', '.join(_describe(pid) for pid in left)}; stop them by PID"
            )
    state_path(state_dir, name).unlink(missing_ok=True)
    return ran


def _wait_gone(leader: int, started: set[int], timeout_s: float) -> list[int]:
    """Wait until nothing the service started is running; what is left after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        _reap(leader)
        left = service_processes(leader, started)
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.1)


def _describe(pid: int) -> str:
    try:
        program = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return str(pid)
    return f"{pid} ({program})"


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


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
