"""The side-effect ledger: a side-effecting call runs at most once per idempotency key.

The key covers the job, the item, the task and the call (tool and canonical arguments), so a
Prefect retry, a resumed run or a model that repeats itself gets the recorded observation back
instead of a second refund. The row is written *before* the tool runs: if the process dies
between the two writes, nobody knows whether the effect happened, and the call is reported as
such (needs review) rather than run again.

SQLite in the state directory, so that every flow on the host shares it; with the Prefect server
on Postgres and flows on several hosts, point `path` at shared storage.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from slmflow.core.records import Observation, ToolCall

_SCHEMA = """CREATE TABLE IF NOT EXISTS effects (
    key TEXT PRIMARY KEY, scope TEXT NOT NULL, tool TEXT NOT NULL, arguments TEXT NOT NULL,
    state TEXT NOT NULL, observation TEXT, started_at REAL NOT NULL, finished_at REAL)"""

UNKNOWN_OUTCOME = (
    "an earlier attempt started this side-effecting call and recorded no outcome "
    "(its process died or the call timed out); not running it again: review needed"
)


def effect_key(scope: str, call: ToolCall) -> str:
    """`scope` names the job, item and task (flows.cascade.scope)."""
    canonical = json.dumps(
        {"scope": scope, "tool": call.name, "arguments": call.arguments},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


class EffectLedger:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, timeout=30, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)

    def begin(self, key: str, scope: str, call: ToolCall) -> Observation | None:
        """None: the caller owns the call and must `finish` it. Otherwise the observation to use
        instead of running it: the recorded one (replayed), or an unknown-outcome error."""
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO effects (key, scope, tool, arguments, state, started_at) "
                    "VALUES (?, ?, ?, ?, 'started', ?)",
                    (key, scope, call.name, json.dumps(call.arguments, sort_keys=True), time.time()),
                )
                return None
            except sqlite3.IntegrityError:
                state, observation = self._db.execute(
                    "SELECT state, observation FROM effects WHERE key = ?", (key,)
                ).fetchone()
        if state == "done":
            return Observation.model_validate_json(observation).model_copy(update={"replayed": True})
        return Observation(tool=call.name, ok=False, error=UNKNOWN_OUTCOME)

    def finish(self, key: str, observation: Observation) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE effects SET state = 'done', observation = ?, finished_at = ? WHERE key = ?",
                (observation.model_dump_json(), time.time(), key),
            )

    def rows(self, scope_prefix: str = "") -> list[dict[str, Any]]:
        with self._lock:
            cursor = self._db.execute(
                "SELECT key, scope, tool, arguments, state, observation FROM effects "
                "WHERE scope LIKE ? ORDER BY started_at",
                (scope_prefix + "%",),
            )
            names = [c[0] for c in cursor.description]
            return [dict(zip(names, row)) for row in cursor.fetchall()]

    def close(self) -> None:
        with self._lock:
            self._db.close()
