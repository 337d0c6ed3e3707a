"""Batched orchestration on the real Prefect API: the same verdicts as one task run per unit, one
task run and one artifact per batch, results streamed to the file, and a checkpoint per batch that
a second run reads back instead of calling the model again."""

from pathlib import Path

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from flows.cache import UnitCache
from flows.cascade import UnitContext
from flows.job import Plan, run_batches, run_units
from flows.ledger import Ledger
from flows.results import ResultsWriter
from flows.spec import build_job
from flows.summary import RunSummary
from slmflow.core.records import Status, TaskResult
from tests.support.fakes import SETTINGS, ByFirstWord
from tests.support.prefect_api import artifacts, task_runs

WORDS = "abcab" * 3  # 15 items: 6 accepted, 6 escalated, 3 needs review (their echo blocked)
JOB = build_job(
    {
        "name": "batches",
        "inputs": {"items": [{"id": f"i{n:02d}", "text": w} for n, w in enumerate(WORDS)]},
        "execution": {"batch_items": 4},
        "tasks": [
            {"id": "label", "kind": "classify", "choices": ["a", "b"], "prompt": "{{ item.text }}"},
            {
                "id": "echo",
                "kind": "classify",
                "choices": ["a", "b"],
                "depends_on": ["label"],
                "prompt": "{{ item.text }} {{ upstream.label }}",
            },
        ],
    },
    Path("."),
)


def _ctx(workers, cache=None, batched=True) -> UnitContext:
    return UnitContext(
        "batches", "run", workers, Ledger(SETTINGS, "big"), cache=cache, step_task_runs=not batched, threads=3
    )


@flow(name="batched", task_runner=ThreadPoolTaskRunner(max_workers=4))
def batched(results_file: str, cache_dir: str) -> tuple[dict, int]:
    workers = ByFirstWord()
    ctx = _ctx(workers, UnitCache(Path(cache_dir), version="v1"))
    plan = Plan.of(JOB, SETTINGS)
    summary = RunSummary(job="batches", run_id="run")
    with ResultsWriter(Path(results_file), Path(cache_dir) / "labels.jsonl") as writer:
        for report in run_batches(JOB, ctx, plan, in_flight=2, writer=writer):
            summary.merge(report.summary)
    return summary.model_dump(), workers.small_calls


@flow(name="per-unit", task_runner=ThreadPoolTaskRunner(max_workers=4))
def per_unit() -> list[dict]:
    return [r.model_dump(mode="json") for r in run_units(JOB, _ctx(ByFirstWord(), batched=False), retries=0)]


def _by_unit(rows) -> dict[tuple[str, str], tuple[str, object]]:
    return {(r.item_id, r.task_id): (r.status.value, r.output) for r in rows}


def test_batches_match_units_and_checkpoint(prefect_api, tmp_path: Path) -> None:
    assert Plan.of(JOB, SETTINGS).batch_items == 4
    first = tmp_path / "first.jsonl"
    state = batched(str(first), str(tmp_path / "cache"), return_state=True)
    summary, calls = state.result()
    written = [TaskResult.model_validate_json(line) for line in first.read_text().splitlines()]
    assert len(written) == 30 and len({r.key for r in written}) == 30  # one line per unit, none twice
    assert not first.with_name(first.name + ".partial").exists()

    units = [TaskResult.model_validate(r) for r in per_unit()]
    assert _by_unit(written) == _by_unit(units)  # the same verdicts and outputs, unit by unit
    statuses = {s for s, _ in _by_unit(written).values()}
    assert statuses == {"accepted", "escalated", "needs_review", "blocked"}
    assert RunSummary.model_validate(summary).counts == RunSummary.of("b", "r", units, 1.0).counts

    runs = task_runs(state.state_details.flow_run_id)
    assert sorted(r.name for r in runs) == [
        f"batch {i} [{a}-{b}]" for i, (a, b) in enumerate([(0, 3), (4, 7), (8, 11), (12, 14)])
    ]
    assert len(artifacts(state.state_details.flow_run_id)) == 4  # one per batch

    # The second run reads each batch's checkpoint: verified units are not drafted again; the
    # needs-review ones (the label of the 3 'c' items) are, as a single unit's cache would do.
    second = tmp_path / "second.jsonl"
    _, calls_again = batched(str(second), str(tmp_path / "cache"))
    assert calls == 30 - 3  # every unit but the blocked ones
    assert calls_again == 3
    again = [TaskResult.model_validate_json(line) for line in second.read_text().splitlines()]
    assert _by_unit(again) == _by_unit(written) and all(r.run_id == "run" for r in again)
    assert sum(r.status is Status.needs_review for r in again) == 3
