"""Live mode: ask the small model and the frontier for every item, and record both answers as a
replay file, which is then evaluated like any other.

Both models answer every item (not only the escalated ones, as in production): the threshold
curve needs the frontier's answer wherever the cascade might send it. Each finished item is
appended at once, so an interrupted run resumes where it stopped, and items already in the file
are never paid for twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from rich.console import Console

from evals.adapters.base import Adapter, Item
from evals.progress import progress_bar
from evals.records import ModelOutput, ReplayRecord, recorded_ids
from slmflow.core.records import Draft, GenerationRequest


class Workers(Protocol):
    """The part of `flows.cascade.Workers` that live evaluation uses."""

    def small(self, request: GenerationRequest) -> Draft: ...
    def frontier(self, request: GenerationRequest) -> Draft: ...


@dataclass
class LiveStats:
    generated: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (item id, error)


def generate(
    adapter: Adapter,
    items: Sequence[Item],
    workers: Workers,
    replay_path: Path,
    *,
    concurrency: int = 8,
    console: Console | None = None,
) -> LiveStats:
    """Append a replay line per item not yet in `replay_path`. Requests run concurrently so the
    fleet can batch them; a failed item is reported and left out, to be retried by a rerun."""
    stats = LiveStats()
    done = recorded_ids(replay_path)
    todo = [item for item in items if item.id not in done]
    stats.skipped = len(items) - len(todo)
    if not todo:
        return stats
    replay_path.parent.mkdir(parents=True, exist_ok=True)
    _drop_torn_line(replay_path)

    def one(item: Item) -> ReplayRecord:
        request = adapter.request(item)
        small = workers.small(request)
        frontier = workers.frontier(request)
        return ReplayRecord(
            id=item.id,
            kind=adapter.verify_kind,
            dataset=adapter.name,
            question=item.question,
            gold=item.gold,
            prompt=request.messages[-1].content,
            small=ModelOutput.from_draft(small),
            frontier=ModelOutput.from_draft(frontier),
        )

    with (
        replay_path.open("a", encoding="utf-8") as out,
        progress_bar(console, len(todo), f"{adapter.name}: generate") as advance,
        ThreadPoolExecutor(max_workers=concurrency) as pool,
    ):
        futures = {pool.submit(one, item): item for item in todo}
        try:
            for future in as_completed(futures):
                item = futures[future]
                try:
                    record = future.result()
                except Exception as exc:  # noqa: BLE001 - one failed item must not end the run
                    stats.failed.append((item.id, f"{type(exc).__name__}: {exc}"))
                else:
                    # Written from this thread only, as results arrive: no lock needed.
                    out.write(record.to_line() + "\n")
                    out.flush()
                    stats.generated += 1
                advance(1)
        except KeyboardInterrupt:
            # Requests already sent finish in the fleet; only queued ones are dropped.
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return stats


def _drop_torn_line(path: Path) -> None:
    """A line cut off by a killed run is dropped, so the item is generated again and the file
    stays valid JSONL."""
    if not path.is_file() or not path.stat().st_size:
        return
    data = path.read_bytes()
    if not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])
