"""`slmflow verify`, `slmflow verifier train` and `slmflow verifier calibrate`.

Plain typer-annotated functions; `slmflow.cli` registers them (slmflow.cli.app). Everything runs on the CPU with
no network: the learned verifier is 150 small trees read from JSON.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from slmflow.cli.support import fail

console = Console(stderr=True)


def verify_command(
    input: Path = typer.Option(
        ..., "--input", help="JSONL: id, kind, question, answer, evidence?, schema?, choices?, tools?, alternatives?"
    ),
    output: Path = typer.Option(..., "--output", help="JSONL written in input order: id, accept, score, reasons"),
    learned: bool = typer.Option(
        None,
        "--learned/--rules-only",
        show_default=False,
        help="use the learned P(correct) for answers, or the rule checks alone; default: as the flow "
        "(SLMFLOW_VERIFIER__LEARNED, on)",
    ),
    fleet: bool = typer.Option(
        False,
        "--fleet",
        help="also get independent answers from the running fleet: alternatives from another small "
        "model (math, classify, extract, tool_call) and a sandboxed program for math",
    ),
    cross_check: str = typer.Option(
        None,
        "--cross-check",
        metavar="MODEL",
        help="with --fleet: the fleet model (its name in the fleet config) that "
        "answers independently; default: the first. Pick one other than "
        "the model that wrote the answers",
    ),
    program_of_thought: bool = typer.Option(
        True,
        "--program-of-thought/--no-program-of-thought",
        help="with --fleet: math answers checked by a program the cross-check model writes, run in a sandbox",
    ),
    cross_model: bool = typer.Option(
        True,
        "--cross-model/--no-cross-model",
        help="with --fleet: add the cross-check model's own answer as an alternative",
    ),
    concurrency: int = typer.Option(8, min=1, help="with --fleet: items verified at once"),
) -> None:
    """Verify answers offline with the flow's verifier: structural, grounding, arithmetic and
    agreement checks, and the learned P(correct) for answers. Model-free unless --fleet is given."""
    from slmflow.core.settings import get_settings
    from verification.jsonl import InputError, output_line, read_lines
    from verification.verifier import Verifier

    if not fleet and (cross_check is not None or not program_of_thought or not cross_model):
        raise fail("--cross-check, --no-program-of-thought and --no-cross-model need --fleet")
    try:
        items = read_lines(input.read_text(encoding="utf-8"))
    except OSError as exc:
        raise fail(f"cannot read {input}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise fail(f"{input} is not UTF-8 text") from None
    except InputError as exc:
        raise fail(f"{input}: {exc}") from None
    settings = get_settings().verifier
    if learned is not None:
        settings = settings.model_copy(update={"learned": learned})
    checker, connection = None, None
    if fleet:
        from verification import independent, sandbox
        from workers import crosscheck

        try:
            connection = crosscheck.connect_fleet(get_settings(), cross_check)
        except Exception as exc:  # noqa: BLE001 - Ray and config errors alike: report, no traceback
            raise fail(f"cannot use the fleet: {exc}") from None
        checker = independent.IndependentChecker(
            connection.workers.small, program_of_thought=program_of_thought, cross_model=cross_model
        )
        console.print(
            f"independent answers from fleet model {connection.name}; sandbox: {sandbox.isolation()}", highlight=False
        )
    try:
        verifier = Verifier.configured(settings, independent=checker)
    except (OSError, ValueError, KeyError) as exc:
        raise fail(f"cannot load the learned verifier's weights: {exc}") from None
    for note in verifier.degraded:
        console.print(f"[yellow]degraded:[/yellow] {note}", highlight=False, soft_wrap=True)
    start = time.perf_counter()
    try:
        if checker is None:
            verdicts = [verifier.verify(item.request()) for item in items]
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(concurrency) as pool:
                verdicts = list(pool.map(lambda item: verifier.verify(item.request()), items))
    finally:
        if connection is not None:
            connection.close()
    lines = [output_line(item, verdict) for item, verdict in zip(items, verdicts)]
    elapsed = time.perf_counter() - start
    try:
        output.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    except OSError as exc:
        raise fail(f"cannot write {output}: {exc.strerror}") from None
    rate = len(items) / elapsed if elapsed > 0 else float("inf")
    console.print(
        f"verified {len(items)} items in {elapsed:.2f} s: {rate:.0f} items/s, "
        f"{1000 * elapsed / max(len(items), 1):.2f} ms/item -> {output}"
    )
    if checker is not None:
        console.print("independent answers: " + _tally(verdicts), highlight=False)


def _tally(verdicts) -> str:
    from collections import Counter

    counts: Counter = Counter()
    for verdict in verdicts:
        for c in verdict.checks:
            if c.name in ("program_of_thought", "alternatives"):
                state = (
                    "disagree" if not c.passed else "inconclusive" if c.reason.startswith("inconclusive") else "agree"
                )
                counts[c.name, state] += 1
    parts = []
    for name in ("program_of_thought", "alternatives"):
        n = {s: counts[name, s] for s in ("agree", "disagree", "inconclusive")}
        if any(n.values()):
            parts.append(f"{name} " + ", ".join(f"{v} {s}" for s, v in n.items()))
    return "; ".join(parts) or "none (no comparable kinds)"


def _history(path: Path | None, weight: float = 5.0) -> list:
    """Labelled answers from the flow's label store: escalations and reviewers' decisions
    (verification.history); prints what was used and skipped."""
    from verification.history import load_history

    if path is None:
        from slmflow.core.settings import get_settings

        path = Path(get_settings().results_dir) / "labels.jsonl"
    try:
        examples, report = load_history(path, weight=weight)
    except OSError as exc:
        raise fail(f"cannot read escalation labels {path}: {exc.strerror or exc}") from None
    for line in report.summary():
        console.print(line, highlight=False, soft_wrap=True)
    return examples


def train_command(
    data: Path = typer.Option(
        None, show_default=False, help="folder with begin/ and pubmedqa/; default: settings data_dir (../shared/data)"
    ),
    out: Path = typer.Option(
        None,
        show_default=False,
        help="where to write the weights (answer.json); default: settings verifier.weights_dir "
        "(<cache_dir>/verifier, SLMFLOW_VERIFIER__WEIGHTS_DIR), where the verifier reads them first",
    ),
    seed: int = typer.Option(0, help="seed for training"),
    from_history: bool = typer.Option(
        False,
        "--from-history",
        help="also learn from the labels the flow records (escalations, review decisions): PATH, "
        "default <results_dir>/labels.jsonl",
    ),
    history_path: Path = typer.Argument(
        None, metavar="[PATH]", show_default=False, help="with --from-history: the labels file"
    ),
    history_weight: float = typer.Option(
        5.0, min=0.0, help="sample weight of one history label (a labelled source example weighs 1)"
    ),
) -> None:
    """Train the learned P(correct) of answers from real labelled outputs (BEGIN CMU-DoG and
    Topical-Chat, half of PubMedQA's conclusions) and, with --from-history, the flow's escalation
    labels; prints out-of-fold figures."""
    from verification.sources import training_set
    from verification.train import train

    if history_path is not None and not from_history:
        raise fail(f"{history_path}: a labels file is read only with --from-history")
    history = _history(history_path, history_weight) if from_history else []
    if data is None:
        from slmflow.core.settings import get_settings

        data = get_settings().data_dir
    try:
        examples = training_set(data)
    except OSError as exc:
        raise fail(f"no training data under {data}: {exc.strerror or exc}") from None
    console.print(
        f"{len(examples)} labelled outputs from {data}" + (f" + {len(history)} history labels" if history else "")
    )
    if out is None:
        from slmflow.core.settings import get_settings

        out = get_settings().verifier_weights_dir
    if train(examples + history, out, seed=seed, log=console.print) is None:
        raise fail("nothing trained: the data lacked correct or wrong answers")


def calibrate_command(
    target_error: float = typer.Option(
        ..., "--target-error", min=0.0, max=1.0, help="highest acceptable share of wrong answers among accepted"
    ),
    labelled: Path = typer.Option(
        None, help="verify-format JSONL with a boolean 'label' per line, outputs the model was not trained on"
    ),
    wrong_share: float = typer.Option(
        None,
        min=0.0,
        max=1.0,
        help="expected share of wrong answers in production; the data is reweighted to it (default: as labelled)",
    ),
    weights: Path = typer.Option(
        None,
        show_default=False,
        help="folder of the weights to calibrate (the packaged ones where it has none); the calibrated "
        "weights are written there; default: settings verifier.weights_dir (<cache_dir>/verifier)",
    ),
    from_history: bool = typer.Option(
        False, "--from-history", help="also calibrate on the flow's labels (escalations, review decisions)"
    ),
    history_path: Path = typer.Option(None, "--history", help="with --from-history: the labels file"),
) -> None:
    """Choose the learned model's acceptance threshold so the estimated error among accepted answers
    is at most the target, and report the escalation rate that costs."""
    from verification.calibrate import calibrate
    from verification.jsonl import InputError, read_lines
    from verification.learned import LearnedVerifier
    from verification.sources import Labelled

    if labelled is None and not from_history:
        raise fail("give --labelled FILE, --from-history, or both")
    examples: list = []
    if labelled is not None:
        try:
            items = read_lines(labelled.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise fail(f"cannot read {labelled}: {exc}") from None
        except InputError as exc:
            raise fail(f"{labelled}: {exc}") from None
        unlabelled = [i.id for i in items if i.label is None]
        if unlabelled:
            raise fail(f"{labelled}: items without a 'label': {unlabelled[:5]}")
        examples = [Labelled(i, int(bool(i.label)), "labelled", i.id) for i in items]
    if from_history:
        # Labels from production: answers the verifier met in real runs, judged by the frontier or a person.
        examples += _history(history_path)
    if weights is None:
        from slmflow.core.settings import get_settings

        weights = get_settings().verifier_weights_dir
    try:
        learned = LearnedVerifier.load(weights)
    except (OSError, ValueError, KeyError) as exc:
        raise fail(f"cannot load the weights to calibrate: {exc}") from None
    if not learned.models:
        raise fail(f"no weights in {weights} or the package; run `slmflow verifier train` first")
    kinds = sorted(k for k in learned.models if any(e.item.kind == k for e in examples))
    if not kinds:
        raise fail(f"no labelled items of a kind with a learned model ({', '.join(learned.models)})")
    try:
        points = calibrate(examples, target_error, learned, weights, wrong_share)
    except (OSError, ValueError, KeyError) as exc:
        raise fail(f"cannot calibrate: {exc}") from None
    for kind in kinds:
        console.print(f"{kind}: calibrated {learned.files[kind]} -> {weights / f'{kind}.json'}", highlight=False)
    mix = f", {wrong_share:.0%} wrong answers" if wrong_share is not None else ""
    table = Table(title=f"acceptance thresholds for error <= {target_error:.1%}{mix}")
    for col in ("kind", "threshold", "est. error", "escalation", "items"):
        table.add_column(col, justify="left" if col == "kind" else "right")
    for p in points:
        note = "" if p.feasible else " (target unreachable: all escalate)"
        table.add_row(p.kind, f"{p.threshold:.3f}", f"{p.error:.1%}", f"{p.escalation:.1%}{note}", str(p.n))
    Console().print(table)
