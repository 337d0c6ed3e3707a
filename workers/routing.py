"""Which replica takes a request: the one with the fewest requests in flight from this process.

Round robin hands a long generation and a short one the same weight, so one replica can sit on a
queue while its twin idles. Counting what is in flight here needs no extra call per request; what
it cannot see is the load other processes (other flow runs sharing the fleet) put on a replica:
each process balances its own share. Ties go round robin, so equal replicas take turns.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any


class Router:
    def __init__(self, replicas: Mapping[str, Sequence[str]], handles: Mapping[str, Any]):
        """`replicas`: kind -> replica names that serve it; `handles`: name -> actor handle."""
        self._replicas = {kind: list(names) for kind, names in replicas.items()}
        self._handles = dict(handles)
        self._in_flight: Counter[str] = Counter()
        self._turn = 0
        self._lock = threading.Lock()

    def _pick(self, kind: str) -> str:
        names = self._replicas.get(kind)
        if not names:
            raise KeyError(f"no small model serves {kind!r}")
        if len(names) == 1:
            return names[0]
        turn = self._turn % len(names)
        self._turn += 1
        rotated = names[turn:] + names[:turn]
        return min(rotated, key=lambda name: self._in_flight[name])

    def choose(self, kind: str) -> Any:
        """The least-loaded replica for `kind`, for a caller that does not report back."""
        with self._lock:
            return self._handles[self._pick(kind)]

    @contextmanager
    def lease(self, kind: str) -> Iterator[Any]:
        """The least-loaded replica for `kind`, counted as busy until the block ends."""
        with self._lock:
            name = self._pick(kind)
            self._in_flight[name] += 1
        try:
            yield self._handles[name]
        finally:
            with self._lock:
                self._in_flight[name] -= 1

    def in_flight(self) -> dict[str, int]:
        with self._lock:
            return {name: self._in_flight[name] for name in self._handles}
