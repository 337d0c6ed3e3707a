"""A job's items as a stream: read from a JSONL file (or the spec's inline list) one at a time, never
all at once, so that a job of a million items costs the driver the items in flight, not the file.

`ItemSource.scan` reads the whole stream once before any model is called: every line must be a JSON
object with a unique id, and `check` (the spec's template checks) must accept it. The runs then read
the stream again, by position (`stream(start, stop)`), which is how batches and shards split a job.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict


class Item(BaseModel):
    id: str
    data: dict[str, Any]


class InputError(ValueError):
    """An item source that cannot be read as items; the message names the line."""


class ItemSource(BaseModel):
    """Exactly one of `path` (JSONL, one object per line) and `inline` (a list of objects)."""

    model_config = ConfigDict(frozen=True)

    path: Path | None = None
    inline: list[dict[str, Any]] | None = None
    id_field: str = "id"

    def stream(self, start: int = 0, stop: int | None = None) -> Iterator[Item]:
        """Items `start`..`stop` (positions among the items, 0-based), in order."""
        return islice(self._items(), start, stop)

    def scan(self, check: Callable[[Item], None] = lambda item: None, limit: int | None = None) -> int:
        """Read every item (up to `limit`) once: parse, check ids are unique, run `check`. Returns the
        item count. Ids are remembered as 8-byte digests, so a million of them cost tens of MB."""
        seen: set[bytes] = set()
        count = 0
        for item in self.stream(0, limit):
            digest = hashlib.blake2b(item.id.encode(), digest_size=8).digest()
            if digest in seen:
                raise InputError(f"duplicate item id '{item.id}' (item {count + 1})")
            seen.add(digest)
            check(item)
            count += 1
        if not count:
            raise InputError("no items")
        return count

    def _items(self) -> Iterator[Item]:
        for lineno, record in self._records():
            if not isinstance(record, dict):
                raise InputError(f"item {lineno} must be a JSON object, got {type(record).__name__}")
            yield Item(id=str(record.get(self.id_field, lineno)), data=record)

    def _records(self) -> Iterator[tuple[int, Any]]:
        if self.inline is not None:
            yield from enumerate(self.inline, 1)
            return
        assert self.path is not None  # the spec's Inputs holds exactly one of path and items
        try:
            with self.path.open(encoding="utf-8") as lines:
                for lineno, line in enumerate(lines, 1):
                    if not line.strip():
                        continue
                    try:
                        yield lineno, json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise InputError(f"{self.path.name} line {lineno}: invalid JSON ({exc.msg})") from None
        except FileNotFoundError:
            raise InputError(f"{self.path} does not exist") from None
        except UnicodeDecodeError as exc:
            raise InputError(f"{self.path} is not UTF-8 ({exc.reason} at byte {exc.start})") from None


def shape(value: Any) -> Any:
    """What a template can tell apart in a value: its keys and types, not its contents. Items of the
    same shape pass or fail the same template checks, so each shape is checked once."""
    if isinstance(value, dict):
        return ("dict", tuple(sorted((str(k), shape(v)) for k, v in value.items())))
    if isinstance(value, list):
        return ("list", frozenset(shape(v) for v in value))
    return type(value).__name__
