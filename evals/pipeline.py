"""Replay and live evaluation end to end: inputs in, report out. The CLI is a thin layer over
these two functions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from evals.adapters.base import Adapter, Item
from evals.cache import ResultCache
from evals.errors import EvalError
from evals.live import LiveStats, Workers, generate
from evals.records import ReplayRecord, read_replay
from evals.replay import EvalSummary, evaluate, resolve_items, summarize
from evals.report import write_outputs
from evals.verify import VerifierLike
from slmflow.core.settings import Settings

CACHE_FILE = "cache.jsonl"
REPLAY_FILE = "replay.jsonl"


@dataclass
class Outcome:
    summary: EvalSummary
    paths: dict[str, Path]
    live: LiveStats | None = None


def run_replay(
    adapter: Adapter,
    records: Sequence[ReplayRecord],
    *,
    data_dir: Path,
    output_dir: Path,
    settings: Settings,
    source: str,
    verifier: VerifierLike | None = None,
    fresh: bool = False,
    console: Console | None = None,
) -> Outcome:
    if not records:
        raise EvalError("no records to evaluate")
    items = resolve_items(adapter, records, _dataset_index(adapter, data_dir))
    if verifier is None:
        from verification.verifier import Verifier

        verifier = Verifier.configured(settings.verifier)
    with ResultCache(output_dir / CACHE_FILE, fresh=fresh) as cache:
        evaluated, support, cached = evaluate(adapter, records, items, verifier, cache, console)
    summary = summarize(adapter, evaluated, support, settings, cached)
    return Outcome(summary, write_outputs(summary, evaluated, output_dir, source))


def run_live(
    adapter: Adapter,
    workers: Workers,
    *,
    data_dir: Path,
    output_dir: Path,
    settings: Settings,
    limit: int | None = None,
    concurrency: int = 8,
    verifier: VerifierLike | None = None,
    fresh: bool = False,
    console: Console | None = None,
) -> Outcome:
    """Generate answers for the first `limit` items (resuming an earlier run in the same
    folder), then evaluate exactly those items."""
    items = adapter.load(data_dir, limit)
    replay_path = output_dir / REPLAY_FILE
    stats = generate(adapter, items, workers, replay_path, concurrency=concurrency, console=console)
    wanted = {item.id for item in items}
    records = [r for r in read_replay(replay_path) if r.id in wanted] if replay_path.is_file() else []
    if not records:
        raise EvalError(
            f"no item could be generated ({len(stats.failed)} failed); first error: "
            f"{stats.failed[0][1] if stats.failed else 'none'}"
        )
    outcome = run_replay(
        adapter,
        records,
        data_dir=data_dir,
        output_dir=output_dir,
        settings=settings,
        source=str(replay_path),
        verifier=verifier,
        fresh=fresh,
        console=console,
    )
    outcome.live = stats
    return outcome


def _dataset_index(adapter: Adapter, data_dir: Path) -> dict[str, Item] | None:
    """The dataset's items by id, or None when its files are absent: replay lines that carry
    their own gold (and tools / evidence where needed) are still usable then."""
    if not all((data_dir / f).is_file() for f in adapter.files):
        return None
    return {item.id: item for item in adapter.load(data_dir)}
