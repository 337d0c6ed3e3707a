"""The domain database: one JSON document, `db.json`, in the tool's working directory.

Tools run in a sandbox that may open files only inside its working directory, so they address the
database by the relative name `db.json`. In-process callers (the scorer replaying gold actions)
point the tools at another directory with `use_directory` rather than `os.chdir`, which would move
every thread of the process (and which the sandbox refuses anyway).

A tool host is a long-lived process that calls many tools in a row, so the parsed document is kept
per process and reparsed only when the file changed.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from evals.errors import EvalError
from evals.tau2.domains import check_domain

DB_FILE = "db.json"
LOCK_FILE = ".db.json.lock"

_directory: ContextVar[Path | None] = ContextVar("tau2_db_directory", default=None)

# Absolute path -> (file stamp, parsed document). A few entries: a host uses one directory; the
# scorer's temporary directories are dropped when their `use_directory` ends. The airline
# document is ~7 MB of JSON (tens of MB as Python objects), so the bound matters.
_CACHE: OrderedDict[str, tuple[tuple[int, int, int], dict[str, Any]]] = OrderedDict()
_CACHE_SIZE = 4


@contextmanager
def use_directory(directory: Path) -> Iterator[None]:
    """Within the block, tools in this thread (or task) use `directory`'s db.json, not the cwd's."""
    token = _directory.set(Path(directory))
    try:
        yield
    finally:
        _directory.reset(token)
        _CACHE.pop(os.path.abspath(Path(directory) / DB_FILE), None)


def db_path(directory: Path | None = None) -> Path:
    """db.json in `directory`, else in the `use_directory` directory, else in the cwd (relative,
    so that the sandbox sees a path inside the tool directory)."""
    base = directory if directory is not None else _directory.get()
    return Path(base) / DB_FILE if base is not None else Path(DB_FILE)


def load_db(directory: Path | None = None) -> dict[str, Any]:
    """The database document. It is the process's cached copy: tools that change it must do so
    inside `transaction`, and must hand callers copies, not parts of it."""
    path = db_path(directory)
    key = os.path.abspath(path)
    try:
        stamp = _stamp(path)
    except FileNotFoundError:
        raise EvalError(f"no {DB_FILE} at {key}: prepare the directory with prepare_workdir") from None
    cached = _CACHE.get(key)
    if cached is not None and cached[0] == stamp:
        _CACHE.move_to_end(key)
        return cached[1]
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    _remember(key, stamp, data)
    return data


def save_db(data: dict[str, Any], directory: Path | None = None) -> None:
    """Write the document atomically: a reader sees the old file or the new one, never half."""
    path = db_path(directory)
    fd, tmp = tempfile.mkstemp(prefix=".db-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            # One C-encoded string: json.dump streams through the pure-Python encoder (~20x slower).
            # A document parsed from JSON has no cycles, and not checking for them halves the time.
            f.write(json.dumps(data, check_circular=False))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _remember(os.path.abspath(path), _stamp(path), data)


@contextmanager
def transaction(directory: Path | None = None) -> Iterator[dict[str, Any]]:
    """The document to change; saved when the block ends, forgotten if it raises, so that a
    failed call leaves the database as it was on disk.

    Writers hold a lock: the executor pools several hosts per job, so two tool calls of one turn
    may run at once, and without it the later save would drop the earlier one's change."""
    path = db_path(directory)
    with open(path.with_name(LOCK_FILE), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        data = load_db(directory)
        try:
            yield data
        except BaseException:
            _CACHE.pop(os.path.abspath(path), None)
            raise
        save_db(data, directory)


def prepare_workdir(domain: str, data_dir: Path, workdir: Path) -> Path:
    """Copy the domain's initial db.json into `workdir` (created; must not hold a db.json yet)."""
    source = Path(data_dir) / check_domain(domain) / DB_FILE
    if not source.is_file():
        raise EvalError(f"tau2 {domain}: {source} not found (is the shared data folder there?)")
    target = Path(workdir) / DB_FILE
    if target.exists():
        raise EvalError(f"{target} already exists: a fresh working directory is needed")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target


def _stamp(path: Path) -> tuple[int, int, int]:
    # The inode changes on every os.replace, so two writes within one mtime tick still differ.
    st = os.stat(path)
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _remember(key: str, stamp: tuple[int, int, int], data: dict[str, Any]) -> None:
    _CACHE[key] = (stamp, data)
    _CACHE.move_to_end(key)
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
