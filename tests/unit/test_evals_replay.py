"""Replay and live evaluation end to end on tiny fixtures: outputs, resume, and a verifier that
does not support a kind yet. The data is built here (never the shared data), and live mode uses a
fake fleet."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals.adapters import get_adapter
from evals.errors import EvalError
from evals.pipeline import CACHE_FILE, REPLAY_FILE, run_live, run_replay
from evals.records import read_replay
from slmflow.core.records import CheckResult, Verdict, VerifyRequest
from slmflow.core.settings import Settings
from tests.support.eval_data import GSM_ROWS, FakeWorkers, write_data, write_synthetic
from verification.verifier import Verifier

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return write_data(tmp_path / "data")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(cache_dir=tmp_path / "cache")


class CountingVerifier:
    """The real verifier, counting how often it is asked."""

    def __init__(self) -> None:
        self.inner = Verifier()
        self.calls = 0

    def verify(self, request: VerifyRequest) -> Verdict:
        self.calls += 1
        return self.inner.verify(request)


def test_replay_end_to_end(tmp_path: Path, data_dir: Path, settings: Settings) -> None:
    replay = write_synthetic("gsm8k", data_dir, tmp_path / "gsm8k.jsonl", small_error_rate=0.5)
    out = tmp_path / "out"
    outcome = run_replay(
        get_adapter("gsm8k"),
        read_replay(replay),
        data_dir=data_dir,
        output_dir=out,
        settings=settings,
        source=str(replay),
    )
    s = outcome.summary
    assert s.n_items == 6 and s.synthetic and s.verifier_supported
    assert s.frontier.accuracy == 1.0 and s.small.accuracy < 1.0
    assert s.cascade is not None and s.small.accuracy <= s.cascade.accuracy <= 1.0
    assert s.savings_vs_frontier is not None and 0 < s.savings_vs_frontier < 1
    assert s.curve[0].escalation_rate == 0 and s.curve[-1].escalation_rate == 1
    assert s.curve_summary is not None and s.curve_summary.apgr is not None

    report = outcome.paths["report"].read_text()
    assert "SYNTHETIC DATA" in report and "APGR" in report and "verified cascade" in report
    assert outcome.paths["plot"].read_bytes().startswith(PNG_MAGIC)
    metrics = json.loads(outcome.paths["metrics"].read_text())
    assert metrics["n_items"] == 6 and metrics["curve_summary"]["apgr"] == s.curve_summary.apgr
    assert len(outcome.paths["items"].read_text().splitlines()) == 6


def test_rerun_skips_cached_items(tmp_path: Path, data_dir: Path, settings: Settings) -> None:
    replay = write_synthetic("pubmedqa", data_dir, tmp_path / "pub.jsonl")
    records, adapter, out = read_replay(replay), get_adapter("pubmedqa"), tmp_path / "out"
    first = CountingVerifier()
    run_replay(adapter, records, data_dir=data_dir, output_dir=out, settings=settings, source="x", verifier=first)
    assert first.calls == 1 + 6  # the support probe, then every item

    again = CountingVerifier()
    outcome = run_replay(
        adapter, records, data_dir=data_dir, output_dir=out, settings=settings, source="x", verifier=again
    )
    assert again.calls == 1 and (outcome.summary.cached, outcome.summary.computed) == (6, 0)

    # A changed answer is a different item: only it is judged again.
    records[2] = records[2].model_copy(
        update={"small": records[2].small.model_copy(update={"answer": "maybe, perhaps"})}
    )
    changed = CountingVerifier()
    outcome = run_replay(
        adapter, records, data_dir=data_dir, output_dir=out, settings=settings, source="x", verifier=changed
    )
    assert changed.calls == 1 + 1 and outcome.summary.cached == 5

    fresh = CountingVerifier()
    run_replay(
        adapter, records, data_dir=data_dir, output_dir=out, settings=settings, source="x", verifier=fresh, fresh=True
    )
    assert fresh.calls == 1 + 6


def test_torn_cache_line_is_redone(tmp_path: Path, data_dir: Path, settings: Settings) -> None:
    replay = write_synthetic("pubmedqa", data_dir, tmp_path / "pub.jsonl")
    out, adapter, records = tmp_path / "out", get_adapter("pubmedqa"), read_replay(replay)
    run_replay(adapter, records, data_dir=data_dir, output_dir=out, settings=settings, source="x")
    cache = out / CACHE_FILE
    lines = cache.read_text().splitlines(keepends=True)
    cache.write_text("".join(lines[:-1]) + lines[-1][:25])  # killed mid-write
    outcome = run_replay(adapter, records, data_dir=data_dir, output_dir=out, settings=settings, source="x")
    assert (outcome.summary.cached, outcome.summary.computed) == (5, 1)
    assert all(json.loads(line) for line in cache.read_text().splitlines()[-1:])


class GenericOnlyVerifier:
    """A verifier that does not know a kind: it runs the same checks whatever the kind."""

    def verify(self, request: VerifyRequest) -> Verdict:
        return Verdict(accept=False, score=0.0, checks=[CheckResult(name="grounding", passed=False, score=0.0)])


class RefusingVerifier:
    def verify(self, request: VerifyRequest) -> Verdict:
        raise ValueError(f"unknown kind {request.kind}")


@pytest.mark.parametrize("verifier", [GenericOnlyVerifier(), RefusingVerifier()])
def test_unsupported_kind_still_reports_baselines(tmp_path: Path, data_dir: Path, settings: Settings, verifier) -> None:
    replay = write_synthetic("gsm8k", data_dir, tmp_path / "gsm8k.jsonl")
    outcome = run_replay(
        get_adapter("gsm8k"),
        read_replay(replay),
        data_dir=data_dir,
        output_dir=tmp_path / "out",
        settings=settings,
        source="x",
        verifier=verifier,
    )
    s = outcome.summary
    assert not s.verifier_supported and "'math'" in s.verifier_note
    assert s.cascade is None and s.curve == [] and s.small.accuracy > 0
    assert "not supported yet" in outcome.paths["report"].read_text()
    assert outcome.paths["plot"].read_bytes().startswith(PNG_MAGIC)


def test_lines_without_gold_need_the_dataset(tmp_path: Path, data_dir: Path, settings: Settings) -> None:
    replay = tmp_path / "own.jsonl"
    line = {
        "id": "not-in-data",
        "kind": "math",
        "question": "1+1?",
        "small": {"model": "m", "answer": "#### 2"},
        "frontier": {"model": "f", "answer": "2"},
    }
    replay.write_text(json.dumps(line) + "\n")
    with pytest.raises(EvalError, match="no `gold`"):
        run_replay(
            get_adapter("gsm8k"),
            read_replay(replay),
            data_dir=data_dir,
            output_dir=tmp_path / "out",
            settings=settings,
            source="x",
        )
    replay.write_text(json.dumps({**line, "gold": "2"}) + "\n")  # a user log with its own gold
    outcome = run_replay(
        get_adapter("gsm8k"),
        read_replay(replay),
        data_dir=tmp_path / "none",
        output_dir=tmp_path / "out",
        settings=settings,
        source="x",
    )
    assert outcome.summary.small.accuracy == 1.0
    assert any("no price for model 'm'" in w for w in outcome.summary.warnings)


def test_malformed_replay_lines_are_reported_together(tmp_path: Path) -> None:
    replay = tmp_path / "bad.jsonl"
    good = {
        "id": "1",
        "kind": "math",
        "question": "q",
        "small": {"model": "m", "answer": "1"},
        "frontier": {"model": "f", "answer": "1"},
    }
    replay.write_text("\n".join([json.dumps(good), "{not json", json.dumps({"id": "2"}), json.dumps(good)]) + "\n")
    with pytest.raises(EvalError) as err:
        read_replay(replay)
    message = str(err.value)
    assert "3 malformed" in message and "line 2" in message and "line 3" in message
    assert "id '1' already on line 1" in message


def test_live_mode_records_then_evaluates_and_resumes(tmp_path: Path, data_dir: Path, settings: Settings) -> None:
    out, adapter = tmp_path / "live", get_adapter("gsm8k")
    flaky = FakeWorkers(fail_on=GSM_ROWS[1][0])
    outcome = run_live(adapter, flaky, data_dir=data_dir, output_dir=out, settings=settings, limit=4, concurrency=2)
    assert outcome.live is not None and outcome.live.generated == 3
    assert [item_id for item_id, _ in outcome.live.failed] == ["gsm8k-train-1"]
    assert outcome.summary.n_items == 3 and not outcome.summary.synthetic

    records = read_replay(out / REPLAY_FILE)
    assert {r.small.model for r in records} == {"smollm2-135m"}
    assert all(r.kind == "math" and r.prompt and r.gold for r in records)

    healthy = FakeWorkers()
    outcome = run_live(adapter, healthy, data_dir=data_dir, output_dir=out, settings=settings, limit=4)
    assert healthy.calls == 1  # only the failed item is generated again
    assert outcome.live is not None and (outcome.live.skipped, outcome.live.generated) == (3, 1)
    s = outcome.summary
    assert s.n_items == 4 and s.cached == 3
    assert (s.small.accuracy, s.frontier.accuracy) == (0.5, 1.0)
    assert s.small.usd_per_1k == pytest.approx(1000 * (50 * 0.03 + 20 * 0.06) / 1e6)
