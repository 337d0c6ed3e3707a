"""`slmflow verify`, `slmflow verifier train` and `slmflow verifier calibrate`.

Plain typer-annotated functions; `slmflow.cli` registers them. Everything runs on the CPU with
no network: the learned verifier is a few hundred small trees read from JSON.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from verification.paths import DEFAULT_DATA, WEIGHTS_DIR

console = Console(stderr=True)


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(1)


def verify_command(
    input: Path = typer.Option(..., "--input", help="JSONL: id, kind, question, answer, evidence?, schema?, "
                                                    "choices?, tools?"),
    output: Path = typer.Option(..., "--output", help="JSONL written in input order: id, accept, score, reasons"),
    rules_only: bool = typer.Option(False, "--rules-only", help="skip the learned verifier"),
    weights: Path = typer.Option(WEIGHTS_DIR, help="folder of learned-verifier weights"),
) -> None:
    """Verify answers offline: structural, grounding and arithmetic checks plus a learned P(correct)."""
    from verification.jsonl import InputError, output_line, read_lines
    from verification.learned import LearnedVerifier
    from verification.verifier import Verifier

    try:
        items = read_lines(input.read_text(encoding="utf-8"))
    except OSError as exc:
        raise _fail(f"cannot read {input}: {exc.strerror}")
    except UnicodeDecodeError:
        raise _fail(f"{input} is not UTF-8 text")
    except InputError as exc:
        raise _fail(f"{input}: {exc}")
    try:
        learned = None if rules_only else LearnedVerifier.load(weights)
    except (OSError, ValueError, KeyError) as exc:
        raise _fail(f"cannot load weights from {weights}: {exc}")
    verifier = Verifier(learned=learned)
    start = time.perf_counter()
    lines = [output_line(item, verifier.verify(item.request())) for item in items]
    elapsed = time.perf_counter() - start
    try:
        output.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    except OSError as exc:
        raise _fail(f"cannot write {output}: {exc.strerror}")
    rate = len(items) / elapsed if elapsed > 0 else float("inf")
    console.print(f"verified {len(items)} items in {elapsed:.2f} s: {rate:.0f} items/s, "
                  f"{1000 * elapsed / max(len(items), 1):.2f} ms/item -> {output}")


def train_command(
    data: Path = typer.Option(DEFAULT_DATA, help="folder with gsm8k/, bfcl_v4/, pubmedqa/, hotpotqa_sample/"),
    out: Path = typer.Option(WEIGHTS_DIR, help="where to write the weights (one JSON file per kind)"),
    seed: int = typer.Option(0, help="seed for example generation and training"),
    limit: int = typer.Option(None, min=1, help="only the first N items of each source (quick runs)"),
) -> None:
    """Train the learned verifier from gold answers and their perturbations; prints dev figures."""
    from verification.data import generate
    from verification.train import train

    if not data.is_dir():
        raise _fail(f"no data folder at {data}")
    examples = generate(data, seed=seed, limit=limit)
    if not examples:
        raise _fail(f"no training data found under {data}")
    console.print(f"{len(examples)} examples from {data}")
    if not train(examples, out, seed=seed, log=console.print):
        raise _fail("nothing trained: every kind lacked correct or wrong examples in some split")


def calibrate_command(
    target_error: float = typer.Option(..., "--target-error", min=0.0, max=1.0,
                                       help="highest acceptable share of wrong answers among accepted"),
    labelled: Path = typer.Option(None, help="verify-format JSONL with a boolean 'label' per line; "
                                             "default: the generated calib split"),
    wrong_share: float = typer.Option(None, min=0.0, max=1.0,
                                      help="expected share of wrong answers in production; the data is "
                                           "reweighted to it (default: as labelled)"),
    data: Path = typer.Option(DEFAULT_DATA, help="data folder for the generated calib split"),
    weights: Path = typer.Option(WEIGHTS_DIR, help="weights to calibrate, updated in place"),
    seed: int = typer.Option(0, help="seed the weights were trained with"),
    limit: int = typer.Option(None, min=1, help="only the first N items of each source"),
) -> None:
    """Choose each kind's acceptance threshold so the estimated error among accepted answers is at
    most the target, and report the escalation rate that costs."""
    from verification.calibrate import calibrate
    from verification.data import Example, generate
    from verification.jsonl import InputError, read_lines

    if labelled is not None:
        try:
            items = read_lines(labelled.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise _fail(f"cannot read {labelled}: {exc}")
        except InputError as exc:
            raise _fail(f"{labelled}: {exc}")
        unlabelled = [i.id for i in items if i.label is None]
        if unlabelled:
            raise _fail(f"{labelled}: items without a 'label': {unlabelled[:5]}")
        examples = [Example(i.request(), int(bool(i.label)), i.id, "labelled") for i in items]
    else:
        examples = [e for e in generate(data, seed=seed, limit=limit) if e.split == "calib"]
    if not list(weights.glob("*.json")):
        raise _fail(f"no weights in {weights}; run `slmflow verifier train` first")
    try:
        points = calibrate(examples, target_error, weights, wrong_share)
    except (OSError, ValueError, KeyError) as exc:
        raise _fail(f"cannot calibrate {weights}: {exc}")
    mix = f", {wrong_share:.0%} wrong answers" if wrong_share is not None else ""
    table = Table(title=f"acceptance thresholds for error <= {target_error:.1%}{mix}")
    for col in ("kind", "threshold", "est. error", "escalation", "items"):
        table.add_column(col, justify="left" if col == "kind" else "right")
    for p in points:
        note = "" if p.feasible else " (target unreachable: all escalate)"
        table.add_row(p.kind, f"{p.threshold:.3f}", f"{p.error:.1%}", f"{p.escalation:.1%}{note}", str(p.n))
    Console().print(table)
