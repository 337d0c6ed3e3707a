"""What every `slmflow` command shares: how a user error is reported."""

from __future__ import annotations

import typer
from rich.console import Console

err_console = Console(stderr=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print `error: message` to stderr and return the Exit to raise: no traceback for mistakes
    the user can fix."""
    err_console.print(f"[red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)
