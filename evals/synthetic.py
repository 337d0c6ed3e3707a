"""SYNTHETIC replay files, for tests and for trying the harness without a fleet.

The answers are built from the dataset's gold answers (the small model's perturbed for a share
of items, the frontier's left correct), token counts are estimated from text length, and every
line carries `"synthetic": true`, which puts a "SYNTHETIC DATA — not a measurement" banner on
the report and the plot. Figures from these files describe this generator, not any model: real
figures come from `slmflow eval --mode live` or from recorded production logs.

    python -m evals.synthetic gsm8k out.jsonl --limit 50
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Sequence
from pathlib import Path

from evals.adapters import ADAPTERS, get_adapter
from evals.adapters.base import Adapter, Item, default_data_dir
from evals.errors import EvalError
from evals.records import ModelOutput, ReplayRecord

SMALL_MODEL = "smollm2-135m"
FRONTIER_MODEL = "gpt-4o"
CHARS_PER_TOKEN = 4  # a rough English average; good enough for synthetic costs


def demo_records(
    adapter: Adapter,
    items: Sequence[Item],
    *,
    small_error_rate: float = 0.35,
    frontier_error_rate: float = 0.0,
    seed: int = 0,
) -> list[ReplayRecord]:
    rng = random.Random(seed)
    records = []
    for i, item in enumerate(items):
        right, wrong = adapter.demo_answers(item, i)
        small_ok = rng.random() >= small_error_rate
        frontier_ok = rng.random() >= frontier_error_rate
        prompt = adapter.prompt(item)
        prompt_tokens = sum(len(m.content) for m in adapter.messages(item)) // CHARS_PER_TOKEN
        # Confidence loosely tracks correctness, so confidence-based checks have a signal.
        confidence = rng.uniform(0.55, 1.0) if small_ok else rng.uniform(0.2, 0.9)
        records.append(
            ReplayRecord(
                id=item.id,
                kind=adapter.verify_kind,
                dataset=adapter.name,
                question=item.question,
                gold=item.gold,
                prompt=prompt,
                synthetic=True,
                small=_output(SMALL_MODEL, right if small_ok else wrong, prompt_tokens, round(confidence, 4)),
                frontier=_output(FRONTIER_MODEL, right if frontier_ok else wrong, prompt_tokens, None),
            )
        )
    return records


def write_demo(path: Path, records: Sequence[ReplayRecord]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(r.to_line() + "\n" for r in records), encoding="utf-8")


def _output(model: str, answer: str, prompt_tokens: int, confidence: float | None) -> ModelOutput:
    return ModelOutput(
        model=model,
        answer=answer,
        tokens_in=prompt_tokens,
        tokens_out=len(answer) // CHARS_PER_TOKEN + 1,
        finish_reason="stop",
        confidence=confidence,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m evals.synthetic",
        description="Write a SYNTHETIC replay file (for tests and demos; not a measurement).",
    )
    parser.add_argument("dataset", choices=sorted(ADAPTERS))
    parser.add_argument("out", type=Path, help="replay JSONL to write")
    parser.add_argument("--limit", type=int, default=50, help="items (default 50)")
    parser.add_argument("--data-dir", type=Path, default=default_data_dir())
    parser.add_argument("--small-error-rate", type=float, default=0.35)
    parser.add_argument("--frontier-error-rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        adapter = get_adapter(args.dataset)
        items = adapter.load(args.data_dir, args.limit)
    except EvalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    write_demo(
        args.out,
        demo_records(
            adapter,
            items,
            small_error_rate=args.small_error_rate,
            frontier_error_rate=args.frontier_error_rate,
            seed=args.seed,
        ),
    )
    print(f"wrote {len(items)} SYNTHETIC {args.dataset} lines to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
