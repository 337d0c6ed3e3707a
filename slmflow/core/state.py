"""Readers of the local stack's state: what `slmflow up` recorded under the state dir (one JSON
file per service with its PID, URL and log) and the Ray head's token file.

Read-only, so that the parts below the top floor (the Ray connection in `workers.cluster`) can find
the head `up` started without importing the code that starts it (`slmflow.cli.stack`).
"""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from pathlib import Path

from pydantic import BaseModel

from slmflow.core.settings import Settings

RAY_TOKEN_FILE = "ray-auth-token"


class Service(BaseModel):
    name: str
    pid: int
    url: str
    health_url: str
    log: str

    @property
    def alive(self) -> bool:
        """Any live process left that the service started (children outlive leaders)."""
        return bool(service_processes(self.pid))

    @property
    def healthy(self) -> bool:
        return self.alive and healthy(self.health_url)


def healthy(url: str, timeout: float = 2.0) -> bool:
    """HTTP 200 from `url`, or for `tcp://host:port` an accepted connection."""
    if url.startswith("tcp://"):
        host, port = url.removeprefix("tcp://").rsplit(":", 1)
        try:
            with socket.create_connection((host, int(port)), timeout=timeout):
                return True
        except OSError:
            return False
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def state_path(state_dir: Path, name: str) -> Path:
    return state_dir / f"{name}.json"


def read(state_dir: Path, name: str) -> Service | None:
    path = state_path(state_dir, name)
    if not path.exists():
        return None
    return Service.model_validate_json(path.read_text())


def processes() -> dict[int, tuple[int, int, int]]:
    """(parent, process group, session) of every running process (zombies excluded), from /proc."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            table[int(entry.name)] = (int(fields[1]), int(fields[2]), int(fields[3]))
    return table


def service_processes(leader: int, known: set[int] | frozenset[int] = frozenset()) -> list[int]:
    """PIDs still running that a service started: its leader heads a session of its own, so
    everything it started shares that session, whatever process group it moved to (Ray puts each
    worker in a group of its own, and vLLM's engine processes live in the worker's); plus any
    descendant of those that left the session, and any of `known` still running."""
    table = processes()
    found = {pid for pid, (_, group, session) in table.items() if leader in (group, session)}
    found |= known & table.keys()
    grew = True
    while grew:
        children = {pid for pid, (parent, _, _) in table.items() if parent in found} - found
        found |= children
        grew = bool(children)
    return sorted(found)


def ray_token_path(settings: Settings) -> Path:
    return settings.state_dir / RAY_TOKEN_FILE


def recorded_ray_address(settings: Settings) -> str | None:
    """The address of the Ray head `slmflow up` started, if it is still up."""
    head = read(settings.state_dir, "ray-head")
    return head.url if head and head.healthy else None


def own_head_token(settings: Settings, address: str) -> Path | None:
    """The token file to connect to `address` with, when it is the head `up` started here (its
    GCS port, or its Ray client port as ray://)."""
    head = read(settings.state_dir, "ray-head")
    path = ray_token_path(settings)
    if head is None or not path.exists():
        return None
    host, _, port = address.removeprefix("ray://").rpartition(":")
    head_port = int(head.url.rpartition(":")[2])
    ours = host in ("127.0.0.1", "localhost") and port in (str(head_port), str(head_port + 1))
    return path if ours else None
