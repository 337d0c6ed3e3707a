"""Free loopback ports for the servers tests start (every one binds to 127.0.0.1)."""

from __future__ import annotations

import socket


def free_ports(n: int) -> list[int]:
    """`n` distinct ports the kernel just handed out (held together, so they differ)."""
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def port_block(size: int, search: range = range(23000, 30000, 17)) -> int:
    """A base port with `size` consecutive free ports (a Ray head uses port, +1, +2). Tests that
    may hold blocks at the same time search different ranges."""
    for base in search:
        socks = []
        try:
            for port in range(base, base + size):
                s = socket.socket()
                s.bind(("127.0.0.1", port))
                socks.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free block of ports")
