"""tau2's scoring rule for the airline and retail domains, and pass^k.

A run passes when both checks tau2 counts by default (`reward_basis = [DB, COMMUNICATE]`) pass:
- DB: the agent's final database hashes equal to the database left by replaying the task's gold
  actions on a fresh copy of the initial one (`evaluator_env.py`). Any path to the same end state
  passes; read-only calls change nothing.
- Communicate: every `communicate_info` string occurs in some message of the agent to the user,
  lowercased, with the commas taken out of the message (`evaluator_communicate.py`).
tau2's natural-language assertions are not part of that reward, and are not scored here.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, lru_cache
from math import comb
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from evals.errors import EvalError
from evals.tau2.db import DB_FILE, load_db, prepare_workdir, use_directory
from evals.tau2.domains import DOMAINS, domain_tools
from evals.tau2.tasks import Task
from tools.registry import from_callable

_MAX_DIFFS = 5
_GoldKey = tuple[str, int, int, str]  # initial db.json, its mtime and size, the gold actions


@dataclass(frozen=True)
class _Gold:
    """What scoring keeps of a gold replay: its hash, and the records it changed (to say where a
    failed run went wrong without replaying again)."""

    hash: str
    changed: dict[tuple[str, str], Any]  # (table, record id) -> the gold record, None if removed


# pass^k scores each task k times, and replaying the 7 MB airline database is the costly part.
_GOLDS: dict[_GoldKey, _Gold] = {}


@dataclass
class Score:
    passed: bool
    db_match: bool
    communicated: bool
    reasons: list[str] = field(default_factory=list)  # why it failed; empty when it passed


@dataclass
class GoldReplay:
    db: dict[str, Any]  # the database after the gold actions
    failures: list[str] = field(default_factory=list)  # "action_id name: error" for each that raised


def db_hash(db: dict[str, Any]) -> str:
    """tau2's `get_dict_hash`: sha256 of the JSON with sorted keys (not checking for cycles, which
    JSON data cannot have, changes the time, not the text)."""
    text = json.dumps(db, sort_keys=True, default=str, check_circular=False)
    return hashlib.sha256(text.encode()).hexdigest()


def call_tool(fn: Callable, arguments: dict[str, Any]) -> Any:
    """Call a tool function the way the tool host does: arguments validated (and coerced) by the
    model derived from its signature, then passed as parsed."""
    parsed = _args_model(fn).model_validate(arguments)
    return fn(**{name: getattr(parsed, name) for name in type(parsed).model_fields})


def replay(task: Task, data_dir: Path) -> GoldReplay:
    """Replay the task's gold actions in-process on a fresh copy of the initial database.

    A gold action that raises is passed over, as tau2 does: some gold trajectories include a call
    that the tools refuse on purpose (retail task 13 first tries a refund to PayPal, which policy
    forbids, then uses the card). A refused call leaves the database as it was (tau2's tools check
    before they change anything, and `db.transaction` forgets a failed change), so the gold end
    state is still well defined. Current tau2 reports a DB *match* against such a trajectory as
    "not evaluated" rather than passed; under its default reward that gives the same pass/fail."""
    tools = domain_tools(task.domain)
    failures = []
    with tempfile.TemporaryDirectory(prefix="tau2-gold-") as tmp:
        workdir = Path(tmp)
        prepare_workdir(task.domain, data_dir, workdir)
        with use_directory(workdir):
            for action in task.evaluation_criteria.actions:
                fn = tools.get(action.name)
                if fn is None:
                    raise EvalError(
                        f"tau2 {task.domain} task {task.id}: gold action {action.action_id} "
                        f"calls unknown tool {action.name!r}"
                    )
                try:
                    call_tool(fn, action.arguments)
                except Exception as exc:
                    failures.append(f"{action.action_id} {action.name}: {exc}")
            # Leaving use_directory drops the cache entry, so the caller owns this dict.
            final = load_db()
    key = _gold_key(task, data_dir)
    initial = _initial_db(*key[:3])
    changed = {
        path: _record(final, path) for path in _paths(initial, final) if _record(final, path) != _record(initial, path)
    }
    _GOLDS[key] = _Gold(hash=db_hash(final), changed=changed)
    return GoldReplay(db=final, failures=failures)


def missing_info(communicate_info: list[str], agent_messages: list[str]) -> list[str]:
    """The `communicate_info` strings no agent message contains (tau2's substring rule)."""
    said = [m.lower().replace(",", "") for m in agent_messages if m]
    return [info for info in communicate_info if not any(info.lower() in m for m in said)]


def score(task: Task, final_db: dict[str, Any], agent_messages: list[str], data_dir: Path) -> Score:
    """Score one run: `final_db` is the agent's database at the end, `agent_messages` the text of
    the agent's messages to the user."""
    key = _gold_key(task, data_dir)
    if key not in _GOLDS:
        replay(task, data_dir)
    gold = _GOLDS[key]
    reasons = []
    db_match = db_hash(final_db) == gold.hash
    if not db_match:
        initial = _initial_db(*key[:3])
        expected = {
            path: gold.changed.get(path, _record(initial, path))
            for path in _paths(initial, final_db) | set(gold.changed)
        }
        differing = [
            f"{table}/{rid}"
            for (table, rid), record in sorted(expected.items())
            if _record(final_db, (table, rid)) != record
        ]
        # Empty when only number types differ (1 vs 1.0): equal in Python, not in the hashed JSON.
        reasons.append(
            "database differs from the gold replay" + (f" at {', '.join(differing[:_MAX_DIFFS])}" if differing else "")
        )
    missing = missing_info(task.evaluation_criteria.communicate_info, agent_messages)
    reasons += [f"not communicated: {info!r}" for info in missing]
    return Score(passed=db_match and not missing, db_match=db_match, communicated=not missing, reasons=reasons)


def pass_hat_k(results_by_task: dict[str, list[bool]], k: int) -> float:
    """tau2's pass^k: over tasks, the mean chance that k trials drawn from a task's n all passed,
    C(c, k) / C(n, k) with c of the n trials passed."""
    if k < 1:
        raise ValueError(f"pass^k needs k >= 1, got {k}")
    if not results_by_task:
        raise ValueError("pass^k needs at least one task")
    short = sorted(task for task, trials in results_by_task.items() if len(trials) < k)
    if short:
        raise ValueError(f"pass^{k} needs at least {k} trials per task; fewer for {', '.join(short[:5])}")
    return sum(comb(sum(trials), k) / comb(len(trials), k) for trials in results_by_task.values()) / len(
        results_by_task
    )


@cache
def _args_model(fn: Callable) -> type[BaseModel]:
    model = from_callable(fn).args_model
    if model is None:  # only MCP tools lack one
        raise EvalError(f"{fn!r} is not a Python tool")
    return model


def _gold_key(task: Task, data_dir: Path) -> _GoldKey:
    source = Path(data_dir) / task.domain / DB_FILE
    try:
        st = os.stat(source)
    except FileNotFoundError:
        raise EvalError(f"tau2 {task.domain}: {source} not found") from None
    actions = json.dumps([a.model_dump() for a in task.evaluation_criteria.actions], sort_keys=True)
    return (os.path.abspath(source), st.st_mtime_ns, st.st_size, actions)


@lru_cache(maxsize=len(DOMAINS))
def _initial_db(path: str, mtime_ns: int, size: int) -> dict[str, Any]:
    """A domain's initial database (keyed by its stamp, so that a changed file is reread)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _record(db: dict[str, Any], path: tuple[str, str]) -> Any:
    table = db.get(path[0])
    return table.get(path[1]) if isinstance(table, dict) else None


def _paths(*dbs: dict[str, Any]) -> set[tuple[str, str]]:
    """Every (table, record id) in any of the databases; each table is a dict of records."""
    return {(name, rid) for db in dbs for name, table in db.items() if isinstance(table, dict) for rid in table}
