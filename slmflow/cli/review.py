"""`slmflow review`: the units runs left for review, from a terminal. The same queue, forms, checks and
effects as the Prefect UI's Resume dialog (flows.queue, flows.review)."""

from __future__ import annotations

import getpass
import json
import time
from typing import Any

import typer
from rich import box
from rich.console import Console
from rich.markdown import Markdown
from rich.markup import escape
from rich.table import Table

from slmflow.cli.support import fail
from slmflow.core.settings import get_settings

review_app = typer.Typer(
    no_args_is_help=True,
    help="Decide the units runs left for review (the same queue as the Prefect UI's suspended review runs).",
)
console = Console()


def _api() -> str:
    from slmflow.cli import stack

    return stack.use_prefect_api(get_settings())


@review_app.command("list")
def list_command(
    job: str = typer.Option(None, help="only this job (its spec `name`)"),
    run: str = typer.Option(None, help="only this job run (its flow run id)"),
    as_json: bool = typer.Option(False, "--json", help="a JSON list: id, job, run, task, item, reasons, ..."),
) -> None:
    """Units awaiting a decision, oldest first."""
    api = _api()
    from flows.queue import open_reviews

    try:
        reviews = open_reviews(job, run)
    except Exception as exc:  # httpx errors vary; any of them means the API is not there
        raise fail(f"cannot read the Prefect API at {api}: {exc}") from None
    if as_json:
        print(json.dumps([r.row() for r in reviews], indent=1, default=str))
        return
    if not reviews:
        console.print("no units await review")
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, title=f"{len(reviews)} units await review")
    table.add_column("id", no_wrap=True)
    table.add_column("job", overflow="fold")
    table.add_column("unit", overflow="fold")
    table.add_column("why", overflow="fold", ratio=1)
    for r in reviews:
        table.add_row(r.id[:8], r.job, escape(f"{r.task}[{r.item}]"), escape("; ".join(r.reasons)[:160]))
    console.print(table)
    console.print("`slmflow review show ID` for the evidence and drafts; ids may be shortened.")


@review_app.command("show")
def show_command(review_id: str = typer.Argument(..., help="the review's id (or a unique prefix)")) -> None:
    """What the reviewer sees: the item, the evidence, the drafts, the verifier's reasons, the choices."""
    _api()
    from flows.queue import find_review, review_form

    try:
        review = find_review(review_id)
        schema, description = review_form(review.id)
    except LookupError as exc:
        raise fail(str(exc)) from None
    console.print(f"review {review.id} ({review.state}), run {review.run}")
    console.print(Markdown(description))
    contract = json.dumps(schema["properties"]["answer"], default=str)
    console.print(f"answer contract: {contract[:1000]}", highlight=False, soft_wrap=True)


def _answer(text: str, schema: dict[str, Any]) -> Any:
    """`--answer` as the contract wants it: text for a string answer, JSON otherwise."""
    if schema["properties"]["answer"].get("type") == "string":
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise fail(f"--answer: this task's answer is JSON, and this is not: {exc.msg}") from None


@review_app.command("decide")
def decide_command(
    review_id: str = typer.Argument(..., help="the review's id (or a unique prefix)"),
    approve: str = typer.Option(None, help="approve a draft: small or frontier"),
    answer: str = typer.Option(None, help="the corrected answer (text, or JSON for extract and tool_call tasks)"),
    reject: str = typer.Option(None, metavar="REASON", help="reject the unit, saying why"),
    reviewer: str = typer.Option(None, help="who decides (default: your login name)"),
    note: str = typer.Option(None, help="a reason to record with an approval or correction"),
    wait: bool = typer.Option(True, help="wait until the decision is applied"),
) -> None:
    """Decide one unit: approve a draft, enter the answer, or reject it. Checked against the unit's
    form as the UI's is; then applied by a worker of the `local` pool, or here when none runs."""
    chosen = [flag for flag, value in (("--approve", approve), ("--answer", answer), ("--reject", reject)) if value]
    if len(chosen) != 1:
        raise fail("give exactly one of --approve small|frontier, --answer ANSWER, --reject REASON")
    if approve and approve not in ("small", "frontier"):
        raise fail(f"--approve: small or frontier, not {approve!r}")
    _api()
    from flows.decisions import DecisionError
    from flows.queue import find_review, review_form, submit_decision, worker_online

    try:
        review = find_review(review_id)
        schema, _ = review_form(review.id)
        raw: dict[str, Any] = {"reviewer": reviewer or getpass.getuser(), "reason": reject or note}
        if approve:
            raw["decision"] = f"approve-{approve}"
        elif answer is not None:
            raw |= {"decision": "correct", "answer": _answer(answer, schema)}
        else:
            raw["decision"] = "reject"
        submit_decision(review, raw)
    except (LookupError, DecisionError) as exc:
        raise fail(str(exc)) from None
    console.print(f"{review.task}[{review.item}]: {raw['decision']} submitted (review {review.id})", markup=False)
    if not wait:
        return
    state = _wait(review.id) if worker_online() else _apply_here(review.id)
    if not state.is_completed():
        raise fail(f"the review ended {state.name}: {state.message}")
    console.print(state.message, markup=False, highlight=False, soft_wrap=True)


def _wait(review_id: str, timeout_s: float = 900):
    """A worker of the pool runs the resumed review; wait for its final state."""
    from uuid import UUID

    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        while True:
            state = client.read_flow_run(UUID(review_id)).state
            if state and state.is_final():
                return state
            if time.monotonic() > deadline:
                raise fail(f"review {review_id} not applied after {timeout_s:.0f} s (state {state and state.name})")
            time.sleep(1)


def _apply_here(review_id: str):
    """No worker polls the pool: run the resumed review in this process, on the stack `slmflow run`
    would use."""
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.flow_engine import run_flow

    from flows.review import review_unit
    from slmflow.cli import services, stack
    from slmflow.core.models import ModelPrepError

    settings = get_settings()
    try:
        with stack.one_off(settings, console.print):
            with get_client(sync_client=True) as client:
                run = client.read_flow_run(UUID(review_id))
            return run_flow(review_unit, flow_run=run, return_type="state")
    except (ModelPrepError, services.ServiceError) as exc:
        raise fail(str(exc)) from None
