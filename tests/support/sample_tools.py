"""Tools for the tool tests: each one exercises a rule of the registry, the sandbox or the ledger."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from pydantic import BaseModel

from tools import tool


class Point(BaseModel):
    x: float
    y: float


@tool
def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: the first addend.
        b: the second addend.
    """
    return a + b


@tool
def norm(p: Point) -> float:
    """Euclidean length of a point (a pydantic argument reaches the tool as the model)."""
    return (p.x**2 + p.y**2) ** 0.5


@tool(timeout_s=0.5)
def slow(seconds: float) -> str:
    """Sleep, to test timeouts."""
    time.sleep(seconds)
    return "woke"


@tool
def fail(message: str) -> None:
    """Raise, to test that errors come back as observations."""
    raise ValueError(message)


@tool
def chatty() -> str:
    """Print to stdout: must not corrupt the host protocol."""
    print("noise on stdout")
    return "quiet answer"


@tool
def read_file(path: str) -> str:
    """Read a file by path (inside the tool directory only, unless privileged)."""
    return Path(path).read_text()


@tool
def write_file(path: str, text: str) -> int:
    """Write a file by path."""
    return Path(path).write_text(text)


@tool
def run_shell(command: str) -> str:
    """Run a shell command (refused in the sandbox)."""
    return subprocess.run(command, shell=True, capture_output=True, text=True).stdout


@tool(allow_shell=True)
def run_shell_privileged(command: str) -> str:
    """Run a shell command; declared to need the shell."""
    return subprocess.run(command, shell=True, capture_output=True, text=True).stdout


@tool
def environment(name: str) -> str | None:
    """Read an environment variable (tools get an empty environment)."""
    return os.environ.get(name)


@tool(side_effects=True)
def append_ledger(entry: str) -> int:
    """Append a line to ledger.txt in the tool directory; returns the number of lines."""
    with open("ledger.txt", "a") as f:
        f.write(entry + "\n")
    with open("ledger.txt") as f:
        return sum(1 for _ in f)


@tool(side_effects=True, timeout_s=0.5)
def slow_effect(entry: str) -> str:
    """A side effect that outlives its timeout."""
    time.sleep(2)
    return entry


@tool(side_effects=True)
def crash_effect(entry: str) -> str:
    """A side effect whose process dies mid-call (the effect's outcome is then unknown)."""
    os._exit(3)
