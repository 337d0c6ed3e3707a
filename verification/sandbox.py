"""Run a short untrusted Python program (a model's program-of-thought) and read what it prints.

Layers, each enough for the common case and together defence in depth:

- **Process:** `python -I -S -B -X utf8` (no site, no user paths, no environment variables, no
  bytecode written), an empty environment, a fresh empty temporary directory as the working
  directory, stdin closed after the program is read, stdout and stderr into files in that
  directory (read back capped).
- **Kernel limits** (`resource`, set before the program's first byte): CPU seconds (SIGXCPU, then SIGKILL),
  address space, file size, open files, no core dumps; plus a wall-clock timeout that kills the
  process group.
- **Namespaces:** where `unshare -rn` works, the program runs in new user and network namespaces,
  so it has no network interface but loopback, and that is down. Started as root, it first drops
  to `nobody` where the interpreter is reachable by that user.
- **Audit hook** (PEP 578), installed before the program's first byte runs: every module the
  program may use is imported first, and any later import is refused; `open` is refused outside
  the temporary directory (and after a few files written inside it); sockets, subprocesses,
  `os.system`/`exec`/`fork`/`kill`, directory listing and file-system changes, `ctypes`, frame
  and traceback introspection, trace hooks and attribute surgery on functions are refused.

An audit hook alone is not a security boundary (CPython says so); the namespaces and limits are
what hold if it is ever bypassed. `isolation()` reports which layers this machine provides.
"""

from __future__ import annotations

import functools
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass

# Modules a program-of-thought may use. All are imported before the program runs: the audit hook
# refuses every import after that, so nothing else can be loaded.
ALLOWED_MODULES = (
    "math",
    "cmath",
    "fractions",
    "decimal",
    "statistics",
    "itertools",
    "functools",
    "collections",
    "operator",
    "re",
    "datetime",
    "numbers",
    "heapq",
    "bisect",
    "string",
)

# Audit events refused outright (exact names, or prefixes ending in ".").
_DENIED = (
    "import",
    "os.system",
    "os.exec",
    "os.posix_spawn",
    "os.spawn",
    "os.fork",
    "os.forkpty",
    "os.kill",
    "os.killpg",
    "os.listdir",
    "os.scandir",
    "os.chdir",
    "os.chmod",
    "os.chown",
    "os.chflags",
    "os.link",
    "os.symlink",
    "os.rename",
    "os.remove",
    "os.rmdir",
    "os.mkdir",
    "os.truncate",
    "os.utime",
    "os.setxattr",
    "os.removexattr",
    "os.listxattr",
    "os.getxattr",
    "os.putenv",
    "os.unsetenv",
    "os.startfile",
    "os.add_dll_directory",
    "os.walk",
    "os.fwalk",
    "socket.",
    "subprocess.",
    "ctypes.",
    "mmap.",
    "pty.",
    "fcntl.",
    "resource.",
    "shutil.",
    "tempfile.",
    "glob.",
    "sqlite3.",
    "urllib.",
    "http.",
    "ftplib.",
    "smtplib.",
    "poplib.",
    "imaplib.",
    "nntplib.",
    "telnetlib.",
    "webbrowser.",
    "winreg.",
    "_winapi.",
    "msvcrt.",
    "object.__getattr__",
    "object.__setattr__",
    "object.__delattr__",
    "sys._getframe",
    "sys._current_frames",
    "sys._current_exceptions",
    "sys.settrace",
    "sys.setprofile",
    "_thread.start_new_thread",
    "signal.pthread_kill",
    "gc.",
)
MAX_FILES_WRITTEN = 8
_OUTPUT_CAP = 64 * 1024

# Runs as `python -c PRELUDE`: set the limits, read the program, import what it may use, lock down,
# run it. Limits are set here rather than in a `preexec_fn`, which is unsafe in a threaded parent
# (`slmflow verify --fleet` verifies items in threads); the hook then refuses `resource.*`. The
# hook's settings are literals in its code, so the program has no variable to change; the prelude
# deletes its own names before the program runs in `__main__`.
_PRELUDE = r"""
import resource
for _limit, _value in __LIMITS__:
    resource.setrlimit(_limit, _value)
import sys
_src = sys.stdin.read()
sys.stdin.close()
for _m in __ALLOWED__:
    __import__(_m)

# Everything the hook uses is a literal or a default argument: the program shares these globals
# and may replace builtins, but cannot reach a default (setting __defaults__ is an audited event).
def _sandbox_hook(event, args, _writes=__import__("itertools").count(), _type=type, _str=str,
                  _bytes=bytes, _int=int, _tuple=tuple, _any=any, _next=next, _Denied=PermissionError):
    if event == "open":
        path, mode, flags = (_tuple(args) + (None, None, 0))[:3]
        if _type(path) is _int:
            if 0 <= path <= 2:
                return
            raise _Denied("sandbox: opening file descriptors is not allowed")
        if _type(path) is _bytes:
            path = path.decode("utf-8", "surrogateescape")
        elif _type(path) is not _str:  # a PathLike could answer differently on its next call
            raise _Denied("sandbox: paths must be plain strings")
        # Lexical normalisation is exact here: the working directory is a resolved path, and the
        # program can create neither directories nor links in it.
        parts = []
        for seg in (path if path.startswith("/") else __ROOT__ + "/" + path).split("/"):
            if seg == "..":
                if parts:
                    parts.pop()
            elif seg and seg != ".":
                parts.append(seg)
        real = "/" + "/".join(parts)
        if real != __ROOT__ and not real.startswith(__ROOT__ + "/"):
            raise _Denied(f"sandbox: open {path!r}: outside the working directory")
        writing = _any(c in mode for c in "wax+") if _type(mode) is _str else (flags or 0) & 0o1103 != 0
        if writing and _next(_writes) >= __MAX_FILES__:
            raise _Denied("sandbox: too many files written")
        return
    if event in __DENIED__ or event.startswith(__PREFIXES__):
        raise _Denied(f"sandbox: {event} is not allowed")

sys.addaudithook(_sandbox_hook)
_code = compile(_src, "<program>", "exec")
for _name in [n for n in globals() if n not in ("__name__", "__doc__", "__builtins__", "_code")]:
    del globals()[_name]
del _name
exec(globals().pop("_code"), globals())
"""


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 5.0  # wall clock
    cpu_s: int = 3
    memory_mb: int = 256  # address space
    file_mb: int = 1  # largest file (stdout included) the program may write
    open_files: int = 16


@dataclass
class SandboxResult:
    ok: bool  # exited 0 within the limits
    stdout: str
    stderr: str
    error: str  # why it failed, one line; "" when ok
    returncode: int | None


def prelude(root: str, limits: Limits = Limits()) -> str:
    exact = tuple(e for e in _DENIED if not e.endswith("."))
    prefixes = tuple(e for e in _DENIED if e.endswith("."))
    mem, size = limits.memory_mb * 1024 * 1024, limits.file_mb * 1024 * 1024
    rlimits = (
        (resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1)),
        (resource.RLIMIT_AS, (mem, mem)),
        (resource.RLIMIT_FSIZE, (size, size)),
        (resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files)),
        (resource.RLIMIT_CORE, (0, 0)),
    )
    return (
        _PRELUDE.replace("__LIMITS__", repr(rlimits))
        .replace("__ALLOWED__", repr(ALLOWED_MODULES))
        .replace("__ROOT__", repr(root))
        .replace("__MAX_FILES__", str(MAX_FILES_WRITTEN))
        .replace("__DENIED__", repr(frozenset(exact)))
        .replace("__PREFIXES__", repr(prefixes))
    )


@dataclass(frozen=True)
class _Isolation:
    unshare: tuple[str, ...]  # command prefix, () when namespaces are unavailable
    drop_to: int | None  # uid to drop to before exec, None to stay


NOBODY = 65534


@functools.cache
def _isolation() -> _Isolation:
    """The strongest setup that works here, found once by starting a trivial interpreter."""
    unshare = shutil.which("unshare")
    candidates = []
    for uid in (NOBODY, None) if os.geteuid() == 0 else (None,):
        if unshare:
            candidates.append(_Isolation((unshare, "-rn"), uid))
        candidates.append(_Isolation((), uid))
    for iso in candidates:
        root = tempfile.mkdtemp(prefix="slmflow-probe-")
        try:
            if iso.drop_to is not None:
                os.chown(root, iso.drop_to, -1)
            proc = subprocess.run(
                [*iso.unshare, sys.executable, "-I", "-S", "-c", "print(6 * 7)"],
                cwd=root,
                env={},
                capture_output=True,
                timeout=20,
                check=False,
                **_spawn(iso),
            )
            if proc.returncode == 0 and proc.stdout.strip() == b"42":
                return iso
        except (OSError, subprocess.SubprocessError):
            pass
        finally:
            shutil.rmtree(root, ignore_errors=True)
    return _Isolation((), None)


def isolation() -> str:
    """The layers in force on this machine, for logs and docs."""
    iso = _isolation()
    layers = ["rlimits", "audit hook", "empty temp cwd", "empty environment"]
    if iso.unshare:
        layers.insert(0, "user+network namespace")
    if iso.drop_to is not None:
        layers.insert(0, f"uid {iso.drop_to}")
    return ", ".join(layers)


def _spawn(iso: _Isolation) -> dict:
    """Popen options, all applied by the C child code (no Python runs between fork and exec)."""
    options: dict = {"start_new_session": True, "close_fds": True}
    if iso.drop_to is not None:
        options.update(user=iso.drop_to, group=iso.drop_to, extra_groups=[])
    return options


def run_python(code: str, limits: Limits = Limits()) -> SandboxResult:
    """Run `code` in the sandbox; never raises for anything the program does."""
    iso = _isolation()
    root = os.path.realpath(tempfile.mkdtemp(prefix="slmflow-sandbox-"))
    try:
        if iso.drop_to is not None:
            os.chown(root, iso.drop_to, -1)
        out_path, err_path = os.path.join(root, ".stdout"), os.path.join(root, ".stderr")
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(
                [*iso.unshare, sys.executable, "-I", "-S", "-B", "-X", "utf8", "-c", prelude(root, limits)],
                cwd=root,
                env={},
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=err,
                **_spawn(iso),
            )
            timed_out = False
            try:
                proc.communicate(code.encode("utf-8", "surrogatepass"), timeout=limits.timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill(proc)
                proc.wait()
        stdout, stderr = _read(out_path), _read(err_path)
        return SandboxResult(
            ok=proc.returncode == 0 and not timed_out,
            stdout=stdout,
            stderr=stderr,
            error=_why(proc.returncode, timed_out, stderr, limits),
            returncode=proc.returncode,
        )
    except OSError as exc:
        return SandboxResult(
            ok=False, stdout="", stderr="", error=f"could not start: {exc.strerror or exc}", returncode=None
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def _read(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read(_OUTPUT_CAP).decode("utf-8", "replace")
    except OSError:
        return ""


def _why(returncode: int | None, timed_out: bool, stderr: str, limits: Limits) -> str:
    if timed_out:
        return f"timed out after {limits.timeout_s:g} s"
    if returncode == 0:
        return ""
    if returncode is not None and returncode < 0:
        sig = -returncode
        if sig in (signal.SIGXCPU, signal.SIGKILL):  # our own wall-clock kill is reported above
            return f"killed at the CPU limit ({limits.cpu_s} s)"
        if sig == signal.SIGXFSZ:
            return f"output beyond {limits.file_mb} MB"
        return f"killed by signal {signal.Signals(sig).name}"
    last = next((ln.strip() for ln in reversed(stderr.splitlines()) if ln.strip()), "")
    return last[:200] or f"exit code {returncode}"
