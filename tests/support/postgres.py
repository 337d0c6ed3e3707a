"""A throwaway PostgreSQL server for tests and benchmarks: `initdb` in a temporary folder, listening on
127.0.0.1 only, trust auth for its own socket and loopback, stopped by its PID.

PostgreSQL refuses to run as root, so under root it runs as the `postgres` user that Debian's package
creates (`apt-get install postgresql`; `make test` installs it when missing).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.ports import free_ports


def binaries() -> Path | None:
    """The folder holding initdb and postgres (Debian keeps them out of PATH)."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return versions[-1].parent if versions else None


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@contextmanager
def postgres_server(database: str = "prefect") -> Iterator[str]:
    """Yields an asyncpg connection URL (`postgresql+asyncpg://...`) to a fresh `database`."""
    bin_dir = binaries()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="slmflow-pg-"))
    data, sockets = root / "data", root / "sockets"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sockets, "postgres")
    port = free_ports(1)[0]
    subprocess.run(
        _as_postgres([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]),
        check=True,
        capture_output=True,
    )
    log = (root / "server.log").open("wb")
    server = subprocess.Popen(
        _as_postgres(
            [str(bin_dir / "postgres"), "-D", str(data), "-p", str(port), "-h", "127.0.0.1", "-k", str(sockets)]
        ),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while subprocess.run(["pg_isready", "-h", "127.0.0.1", "-p", str(port)], capture_output=True).returncode:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not start; see {root / 'server.log'}")
            time.sleep(0.2)
        subprocess.run(
            ["createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", database],
            check=True,
            capture_output=True,
        )
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}/{database}"
    finally:
        os.killpg(server.pid, signal.SIGINT)  # "fast shutdown"; its own session, so only its processes
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()
        shutil.rmtree(root, ignore_errors=True)


def count_rows(url: str, tables: list[str]) -> dict[str, int]:
    """Row counts of `tables` in the database at `url` (through psql)."""
    plain = url.replace("postgresql+asyncpg://", "postgresql://")
    query = " UNION ALL ".join(f"SELECT '{t}', count(*) FROM {t}" for t in tables)
    out = subprocess.run(["psql", plain, "-At", "-F", ",", "-c", query], check=True, capture_output=True, text=True)
    return {name: int(n) for name, n in (line.split(",") for line in out.stdout.split())}
