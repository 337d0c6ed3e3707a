"""`slmflow eval`, as a plain function that slmflow.cli.app registers.

Replay mode is model-free: it reads recorded small and frontier answers and needs no fleet.
Live mode asks the running fleet (Ray actors) for both answers first, then evaluates them the
same way.
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from slmflow.cli.support import fail
from slmflow.core.settings import Settings, get_settings

if TYPE_CHECKING:
    from evals.live import Workers
    from evals.pipeline import Outcome

console = Console()
err_console = Console(stderr=True)

EXIT_INTERRUPTED = 130  # the shell's convention for SIGINT


class Dataset(str, Enum):
    gsm8k = "gsm8k"
    bfcl = "bfcl"
    pubmedqa = "pubmedqa"
    hotpotqa = "hotpotqa"


class Mode(str, Enum):
    replay = "replay"
    live = "live"


def eval_command(
    dataset: Dataset = typer.Argument(..., help="which dataset's items and grading rule to use"),
    mode: Mode = typer.Option(
        Mode.replay,
        "--mode",
        "-m",
        help="replay: evaluate recorded answers from --input, no model is called; live: ask the "
        "running fleet's small model and frontier for every item, then evaluate",
    ),
    input: Path | None = typer.Option(  # noqa: A002 - the option is --input
        None,
        "--input",
        "-i",
        dir_okay=False,
        help='replay JSONL, one item per line: {"id", "kind", "question", "gold"?, '
        '"small": {"model", "answer", "tokens_in", "tokens_out"}, "frontier": {...}}',
    ),
    output_dir: Path | None = typer.Option(
        None,
        "--output-dir",
        "-o",
        file_okay=False,
        show_default="<results_dir>/eval/<dataset>",
        help="where report.md, curve.png, metrics.json and the cache go; rerunning into the same folder resumes",
    ),
    limit: int | None = typer.Option(None, min=1, help="only the first N items"),
    data_dir: Path | None = typer.Option(
        None,
        file_okay=False,
        show_default="shared/data next to the repository",
        help="the shared data folder with the datasets",
    ),
    concurrency: int = typer.Option(8, min=1, help="live mode: requests in flight"),
    fresh: bool = typer.Option(False, "--fresh", help="ignore cached per-item results and evaluate every item again"),
) -> None:
    """Measure the verified cascade on a dataset: accuracy of the small model alone, the frontier
    alone and the cascade (keep the small answer when the verifier accepts it, else use the
    frontier's), escalation rate, cost per 1k tasks and savings, and the accuracy-vs-escalation
    curve over verifier-score thresholds with APGR. Writes report.md, curve.png, metrics.json
    and items.jsonl. Finished items are cached: an interrupted run resumes when run again.

    Exits 1 on bad inputs (or, in live mode, when some items could not be generated) and 130
    when interrupted. To try it without a fleet, write a SYNTHETIC replay file (not a
    measurement) with `python -m evals.synthetic DATASET OUT.jsonl`."""
    from evals.adapters import default_data_dir, get_adapter
    from evals.errors import EvalError
    from evals.pipeline import REPLAY_FILE, run_live, run_replay
    from evals.records import read_replay

    settings = get_settings()
    out = output_dir or settings.results_dir / "eval" / dataset.value
    data = data_dir or default_data_dir()
    try:
        adapter = get_adapter(dataset.value)
        if mode is Mode.replay:
            if input is None:
                raise fail(
                    "replay mode needs --input (a replay JSONL); use --mode live to generate one from the running fleet"
                )
            records = read_replay(input)[: limit or None]
            outcome = run_replay(
                adapter,
                records,
                data_dir=data,
                output_dir=out,
                settings=settings,
                source=str(input),
                fresh=fresh,
                console=err_console,
            )
        else:
            if input is not None:
                raise fail(f"--input is for replay mode; live mode writes its answers to {out / REPLAY_FILE}")
            try:
                outcome = run_live(
                    adapter,
                    _fleet_workers(settings),
                    data_dir=data,
                    output_dir=out,
                    settings=settings,
                    limit=limit,
                    concurrency=concurrency,
                    fresh=fresh,
                    console=err_console,
                )
            finally:
                _release_fleet()
    except EvalError as exc:
        raise fail(str(exc)) from None
    except OSError as exc:  # unwritable output folder, full disk: the user's to fix
        raise fail(f"{exc.strerror or exc}: {exc.filename}") from None
    except KeyboardInterrupt:
        raise fail(
            "interrupted: finished items are saved; run the same command again to resume", EXIT_INTERRUPTED
        ) from None
    _print_outcome(outcome)
    if outcome.live and outcome.live.failed:
        first_id, first_error = outcome.live.failed[0]
        raise fail(
            f"{len(outcome.live.failed)} item(s) could not be generated (first: "
            f"{first_id}: {first_error}); the report covers the rest, and rerunning "
            "retries them"
        )


def _fleet_workers(settings: Settings) -> Workers:
    """The running fleet's workers, checked before any item is sent: the frontier must answer,
    and its Prefect rate limit (which every frontier call passes) must exist. Imported here:
    Ray and Prefect are needed for live mode only."""
    from evals.errors import EvalError

    try:
        from flows.ratelimit import ensure_frontier_rate_limit
        from workers.fleet import get_fleet
        from workers.remote import RayWorkers

        fleet = get_fleet(settings)
        fleet.check_frontier()
        ensure_frontier_rate_limit(settings.frontier_rpm)
        return RayWorkers(fleet)
    except Exception as exc:  # noqa: BLE001 - any failure here means "no fleet to talk to"
        raise EvalError(
            f"cannot reach the fleet ({type(exc).__name__}: {exc}); live mode "
            "needs the Ray fleet that `slmflow run` starts, and a reachable "
            "frontier"
        ) from None


def _release_fleet() -> None:
    """Stop the actors this process created, if any (a fleet someone else started is left
    running). Nothing to do when the fleet module was never imported."""
    fleet_module = sys.modules.get("workers.fleet")
    if fleet_module is not None:
        fleet_module.close_fleet()


def _print_outcome(outcome: Outcome) -> None:
    s = outcome.summary
    if s.synthetic:
        err_console.print("[bold yellow]SYNTHETIC replay file: these figures describe the generator, not a model.[/]")
    if not s.verifier_supported:
        err_console.print(f"[yellow]warning:[/] {s.verifier_note}; cascade figures are not computed", highlight=False)
    for warning in s.warnings:
        err_console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    table = Table(title=f"{s.dataset}: {s.n_items} items ({s.cached} cached)")
    for column in ("policy", "accuracy", "escalation", "USD / 1k tasks"):
        table.add_column(column, justify="left" if column == "policy" else "right")
    for p in (s.small, s.frontier, s.cascade):
        if p is not None:
            table.add_row(p.name, f"{p.accuracy:.1%}", f"{p.escalation_rate:.1%}", f"{p.usd_per_1k:.4f}")
    console.print(table)
    if s.savings_vs_frontier is not None:
        console.print(f"savings vs all-frontier: {s.savings_vs_frontier:.1%}")
    if s.curve_summary and s.curve_summary.apgr is not None:
        reach = ", ".join(
            f"{k} of gap at {'not reached' if v is None else f'{v:.1%}'}"
            for k, v in s.curve_summary.escalation_for_pgr.items()
        )
        console.print(f"APGR {s.curve_summary.apgr:.3f}; {reach} escalation")
    for name, path in outcome.paths.items():
        console.print(f"{name}: {path}", highlight=False)
