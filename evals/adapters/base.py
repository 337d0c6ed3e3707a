"""What every dataset adapter provides, and the pieces they share.

An adapter knows one dataset: how to load its items from the shared data folder, the request a
model gets for an item, how the verifier should see an answer, and the dataset's own grading rule.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from evals.errors import EvalError
from evals.records import ModelOutput, ReplayRecord
from slmflow.core.records import GenerationRequest, Message, TaskKind, VerifyKind, VerifyRequest
from slmflow.core.settings import get_settings


def default_data_dir() -> Path:
    """Where third-party data is read in place (settings `data_dir`, SLMFLOW_DATA_DIR)."""
    return get_settings().data_dir


@dataclass(frozen=True)
class Item:
    """One dataset item. `extra` holds what some adapters need besides question and gold:
    `tools` and `category` (BFCL), `evidence` (passages), `choices` (labels)."""

    id: str
    question: str
    gold: Any
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Grade:
    correct: bool
    score: float  # 1.0/0.0, except graded-credit metrics (HotpotQA token F1)
    parsed: Any  # what the grader read from the answer, kept for the per-item log


class Adapter(ABC):
    name: ClassVar[str]
    verify_kind: ClassVar[VerifyKind]
    task_kind: ClassVar[TaskKind]
    files: ClassVar[tuple[str, ...]]  # under the data folder; checked before loading
    max_tokens: ClassVar[int] = 256
    score_name: ClassVar[str | None] = None  # set when Grade.score is more than correct/wrong
    # Item.extra keys a replay record must supply when the item is not in the dataset.
    required_extra: ClassVar[tuple[str, ...]] = ()

    def load(self, data_dir: Path, limit: int | None = None) -> list[Item]:
        missing = [f for f in self.files if not (data_dir / f).is_file()]
        if missing:
            raise EvalError(
                f"{self.name}: {', '.join(missing)} not found under {data_dir} "
                "(pass --data-dir to point at the shared data folder)"
            )
        items = self._load(data_dir)
        return items[:limit] if limit else items

    @abstractmethod
    def _load(self, data_dir: Path) -> list[Item]: ...

    @abstractmethod
    def messages(self, item: Item) -> list[Message]:
        """System instruction and user turn, the same for the small model and the frontier."""

    @abstractmethod
    def parse(self, answer: str, item: Item) -> Any:
        """The answer as the grader and the verifier read it (None when unreadable)."""

    @abstractmethod
    def grade(self, answer: str, item: Item) -> Grade: ...

    @abstractmethod
    def demo_answers(self, item: Item, variant: int) -> tuple[str, str]:
        """A correct and a wrong answer text, for SYNTHETIC demo files only; `variant` lets an
        adapter vary the kind of mistake deterministically."""

    def choices(self, item: Item) -> list[str] | None:
        return None

    def request(self, item: Item) -> GenerationRequest:
        return GenerationRequest(
            kind=self.task_kind, messages=self.messages(item), choices=self.choices(item), max_tokens=self.max_tokens
        )

    def prompt(self, item: Item) -> str:
        # What the flow hands the verifier as `source`: the user message as sent.
        return self.messages(item)[-1].content

    def verify_request(self, item: Item, prompt: str, out: ModelOutput) -> VerifyRequest:
        return VerifyRequest(
            kind=self.verify_kind,
            source=prompt,
            text=out.answer,
            output=self.parse(out.answer, item),
            finish_reason=out.finish_reason,
            confidence=out.confidence,
            question=item.question,
            choices=self.choices(item),
            **self.verify_extras(item),
        )

    def verify_extras(self, item: Item) -> dict[str, Any]:
        return {}

    def extra_metrics(self, pairs: list[tuple[Any, Any]]) -> dict[str, float]:
        """Dataset-specific aggregate figures over (gold, parsed) pairs, e.g. macro-F1."""
        return {}

    def item_from_record(self, record: ReplayRecord, known: Item | None) -> Item:
        """The item a replay line refers to: the dataset's copy when there is one, with anything
        the line carries itself taking precedence (a user log may have its own gold)."""
        extra = dict(known.extra) if known else {}
        for key in ("tools", "evidence", "choices"):
            value = getattr(record, key)
            if value is not None:
                extra[key] = value
        gold = record.gold if record.gold is not None else (known.gold if known else None)
        if gold is None and not self._gold_optional(record.id, extra):
            raise EvalError(
                f"{self.name} item {record.id!r}: the line has no `gold` and the id is "
                "not in the dataset (check --data-dir, or add gold to the line)"
            )
        missing = [k for k in self.required_extra if k not in extra]
        if missing:
            raise EvalError(
                f"{self.name} item {record.id!r}: the line has no "
                f"{' / '.join(missing)} and the id is not in the dataset"
            )
        return Item(id=record.id, question=record.question, gold=gold, extra=extra)

    def _gold_optional(self, item_id: str, extra: dict[str, Any]) -> bool:
        return False


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise EvalError(f"cannot read {path}: {exc}") from None


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise EvalError(f"{path}:{lineno}: not JSON ({exc.msg})") from None
