"""A tool host: a long-lived child interpreter that runs Python tools inside a sandbox.

Why a child process: a tool that hangs can be killed (a thread cannot), a crash takes down the
host and not the flow, and the sandbox's rules apply to the tool and nothing else.

The sandbox, for a tool that declares no privileges:
- The working directory is the job's tool directory, and the only place the tool may open,
  create, list, rename or delete files (reads of installed library code are allowed, so that a
  tool can import lazily). SQLite databases likewise.
- No shell: subprocesses, `os.system`, `exec*`, `fork`, `kill` and `ctypes` are refused.
- No network: every `socket.*` event is refused.
- An empty environment (no API keys reach a tool) and `python -I` (no user site, no PYTHON*).

The rules are a PEP 578 audit hook installed before the first tool module is imported. CPython
says an audit hook is not a security boundary on its own: it stops a tool from reaching outside
by the ordinary routes (the ones a model-chosen argument could steer), not a hostile tool author;
tools are code the job's owner installed. `allow_filesystem`, `allow_shell` and `allow_network`
on a tool lift the matching rule, and such tools run in a separate host.

Protocol: one JSON object per line. The parent sends `{"fn": "module:qualname", "args": {...}}`;
the host answers `{"ok": true, "result": ...}` or `{"ok": false, "error": "..."}`. The tool's own
prints go to stderr, so they cannot corrupt the answers.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

_MAX_LINE = 8 * 1024 * 1024

# Runs as `python -I -B -c PRELUDE`; the first stdin line is the setup.
_PRELUDE = r"""
import json, os, sys
_setup = json.loads(sys.stdin.readline())
sys.path[:0] = _setup["sys_path"]
_out = os.fdopen(os.dup(1), "w", encoding="utf-8")
os.dup2(2, 1)  # a tool's print() must not be read as an answer
os.chdir(_setup["workdir"])

def _install(root, read_roots, code_roots, fs, shell, net):
    _code = (".py", ".pyc", ".so", ".pyi", ".pth", ".typed")
    _deny_shell = ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
                   "os.forkpty", "pty.spawn", "os.kill", "os.killpg", "ctypes.", "signal.pthread_kill")
    _mutating = ("os.remove", "os.rename", "os.mkdir", "os.rmdir", "os.chmod", "os.chown", "os.truncate",
                 "os.utime", "os.link", "shutil.rmtree", "shutil.copyfile", "shutil.move")

    def _real(p, _abspath=os.path.abspath, _realpath=os.path.realpath, _fspath=os.fspath):
        if isinstance(p, int):
            return None
        p = _fspath(p)
        if isinstance(p, bytes):
            p = p.decode("utf-8", "surrogateescape")
        return _realpath(_abspath(p))

    def _under(p, base):
        return p == base or p.startswith(base.rstrip("/") + "/")

    def _readable(p):
        return (_under(p, root) or any(_under(p, r) for r in read_roots)
                or (p.endswith(_code) and any(_under(p, r) for r in code_roots)))

    def hook(event, args, _Denied=PermissionError):
        if not shell and event.startswith(_deny_shell):
            raise _Denied(f"sandbox: {event} is not allowed for this tool (no shell)")
        if not net and event.startswith("socket."):
            raise _Denied(f"sandbox: {event} is not allowed for this tool (no network)")
        if fs or shell:
            return
        if event == "open":
            path, mode = args[0], args[1] if len(args) > 1 else "r"
            real = _real(path)
            if real is None:
                return
            writing = isinstance(mode, str) and any(c in mode for c in "wax+")
            if (_under(real, root) if writing else _readable(real)):
                return
            raise _Denied(f"sandbox: open {path!r}: outside the tool directory")
        if event in ("os.listdir", "os.scandir"):
            real = _real(args[0] if args and args[0] is not None else ".")
            # Import needs to list code directories; their names are no secret.
            if real is None or _readable(real) or any(_under(real, r) or _under(r, real) for r in code_roots):
                return
            raise _Denied(f"sandbox: listing {args[0]!r}: outside the tool directory")
        if event in ("os.symlink", "os.chdir", "os.chroot", "sqlite3.enable_load_extension",
                     "sqlite3.load_extension"):
            raise _Denied(f"sandbox: {event} is not allowed")
        if event.startswith(_mutating):
            for p in args[:2]:
                real = _real(p) if isinstance(p, (str, bytes, os.PathLike)) else None
                if real is not None and not _under(real, root):
                    raise _Denied(f"sandbox: {event} {p!r}: outside the tool directory")
        if event == "sqlite3.connect":
            db = args[0]
            if isinstance(db, (str, bytes, os.PathLike)):
                text = os.fspath(db)
                if text in (":memory:", b":memory:", "", b""):
                    return
                real = _real(db)
                if real is not None and not _under(real, root):
                    raise _Denied(f"sandbox: sqlite database {db!r}: outside the tool directory")

    sys.addaudithook(hook)

_p = _setup["privileges"]
if not all(_p.values()):
    _install(os.path.realpath(_setup["workdir"]), _setup["read_roots"], _setup["code_roots"],
             _p["filesystem"], _p["shell"], _p["network"])
del _install, _p

from tools.host import serve
serve(sys.stdin, _out)
"""


def serve(stdin, out) -> None:
    """The host's loop (runs inside the child)."""
    import importlib
    import traceback

    from pydantic_core import to_jsonable_python

    from tools.registry import from_callable

    resolved: dict[str, Any] = {}
    for line in stdin:
        request = json.loads(line)
        try:
            if request["fn"] not in resolved:
                module, _, qualname = request["fn"].partition(":")
                obj: Any = importlib.import_module(module)
                for part in qualname.split("."):
                    obj = getattr(obj, part)
                # Re-validated here so that a parameter typed as a pydantic model gets the model.
                resolved[request["fn"]] = (obj, from_callable(obj).args_model)
            fn, model = resolved[request["fn"]]
            parsed = model.model_validate(request["args"])
            result = fn(**{name: getattr(parsed, name) for name in type(parsed).model_fields})
            answer = {"ok": True, "result": to_jsonable_python(result, fallback=str)}
        except Exception as exc:  # a tool's failure is an observation for the model
            last = traceback.extract_tb(exc.__traceback__)[-1:]
            where = f" ({Path(last[0].filename).name}:{last[0].lineno})" if last else ""
            answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}{where}"}
        out.write(json.dumps(answer) + "\n")
        out.flush()


class HostDied(RuntimeError):
    pass


class ToolHost:
    """The parent's handle on one host process. Not thread-safe: the executor pools them."""

    def __init__(
        self, workdir: Path, privileges: tuple[bool, bool, bool], sys_path: list[str], code_roots: Collection[str] = ()
    ):
        """`code_roots`: folders whose Python files the host may read besides `sys_path`
        (packages an editable install maps by a finder rather than a path entry)."""
        self.workdir = workdir.resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        filesystem, shell, network = privileges
        stdlib = {os.path.realpath(p) for p in (sys.base_prefix, sys.prefix, sys.exec_prefix)}
        site = {os.path.realpath(p) for p in sys.path if "site-packages" in p or "dist-packages" in p}
        setup = {
            "sys_path": sys_path,
            "workdir": str(self.workdir),
            "read_roots": sorted(stdlib | site),
            "code_roots": sorted({os.path.realpath(p) for p in [*sys_path, *code_roots] if p}),
            "privileges": {"filesystem": filesystem, "shell": shell, "network": network},
        }
        # No parent environment: it holds the frontier key and other secrets.
        env = {"PATH": os.defpath, "HOME": str(self.workdir), "LANG": "C.UTF-8", "PYTHONUTF8": "1"}
        # stderr (the tools' prints, and the host's traceback if it dies) goes to a file outside
        # the tool directory, read back when the host dies.
        self._stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-B", "-c", _PRELUDE],
            cwd=self.workdir,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            start_new_session=True,
        )
        self._buffer = b""
        self._send(setup)

    def call(self, fn: str, args: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """The host's answer; TimeoutError if it takes longer (the host must then be killed)."""
        self._send({"fn": fn, "args": args})
        return json.loads(self._readline(time.monotonic() + timeout_s))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout, self._stderr):
            if stream:
                stream.close()

    def _died(self) -> HostDied:
        code = self.proc.wait()
        self._stderr.seek(0, os.SEEK_END)
        self._stderr.seek(max(0, self._stderr.tell() - 2000))
        last = self._stderr.read().decode("utf-8", "replace").strip().splitlines()[-1:]
        return HostDied(f"tool host exited (code {code}){': ' + last[0] if last else ''}")

    def _send(self, message: dict[str, Any]) -> None:
        try:
            assert self.proc.stdin is not None  # started with stdin=PIPE
            self.proc.stdin.write((json.dumps(message) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise self._died() from None

    def _readline(self, deadline: float) -> bytes:
        assert self.proc.stdout is not None  # started with stdout=PIPE
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                raise self._died()
            self._buffer += chunk
            if len(self._buffer) > _MAX_LINE:
                raise HostDied("tool result larger than 8 MiB")
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line
