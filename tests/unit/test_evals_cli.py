"""`slmflow eval` through a tiny typer app that registers the command function the way
slmflow.cli will: exit codes and messages, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from evals.errors import EvalError
from slmflow.cli import evaluate as eval_cli
from slmflow.cli.evaluate import EXIT_INTERRUPTED, eval_command
from tests.support.eval_data import GSM_ROWS, FakeWorkers, write_data, write_synthetic

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
app.command("eval")(eval_command)
app.command("version")(lambda: None)  # a second command keeps `eval` a subcommand

runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return write_data(tmp_path / "data")


def _eval(*args: str):
    return runner.invoke(app, ["eval", *args])


def _no_traceback(result) -> None:
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_help_explains_the_modes() -> None:
    result = _eval("--help")
    assert result.exit_code == 0
    for word in ("replay", "live", "--input", "--output-dir", "--data-dir", "--limit", "APGR"):
        assert word in result.output


def test_replay_writes_the_report(tmp_path: Path, data_dir: Path) -> None:
    replay = write_synthetic("pubmedqa", data_dir, tmp_path / "pub.jsonl")
    out = tmp_path / "out"
    result = _eval(
        "pubmedqa", "--input", str(replay), "--output-dir", str(out), "--data-dir", str(data_dir), "--limit", "4"
    )
    assert result.exit_code == 0, result.output
    assert "SYNTHETIC" in result.output and "verified cascade" in result.output
    assert json.loads((out / "metrics.json").read_text())["n_items"] == 4
    assert (out / "curve.png").is_file() and (out / "report.md").is_file()

    again = _eval("pubmedqa", "-i", str(replay), "-o", str(out), "--data-dir", str(data_dir), "--limit", "4")
    assert again.exit_code == 0 and "(4 cached)" in again.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["gsm8k"], "replay mode needs --input"),
        (["gsm8k", "--input", "missing.jsonl"], "replay file not found"),
        (["gsm8k", "--mode", "live", "--input", "x.jsonl"], "--input is for replay mode"),
    ],
)
def test_user_errors_exit_1_with_a_message(args: list[str], message: str) -> None:
    result = _eval(*args)
    assert result.exit_code == 1
    assert message in result.output
    _no_traceback(result)


def test_malformed_file_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1", "kind": "math"}\n')
    result = _eval("gsm8k", "--input", str(bad))
    assert result.exit_code == 1 and "line 1" in result.output
    _no_traceback(result)


def test_wrong_kind_for_the_dataset(tmp_path: Path, data_dir: Path) -> None:
    replay = write_synthetic("pubmedqa", data_dir, tmp_path / "pub.jsonl")
    result = _eval("gsm8k", "--input", str(replay), "--data-dir", str(data_dir), "-o", str(tmp_path / "out"))
    assert result.exit_code == 1 and "has kind 'classify'" in result.output
    _no_traceback(result)


def test_bad_choices_are_usage_errors() -> None:
    assert _eval("tau2", "--input", "x").exit_code == 2
    assert _eval("gsm8k", "--mode", "batch").exit_code == 2
    assert _eval("gsm8k", "--limit", "0", "--input", "x").exit_code == 2


def test_live_mode_with_a_fake_fleet(tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(eval_cli, "_fleet_workers", lambda settings: FakeWorkers())
    out = tmp_path / "live"
    result = _eval("gsm8k", "--mode", "live", "--limit", "3", "-o", str(out), "--data-dir", str(data_dir))
    assert result.exit_code == 0, result.output
    assert len((out / "replay.jsonl").read_text().splitlines()) == 3


def test_live_mode_exits_1_when_items_fail(tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:

    monkeypatch.setattr(eval_cli, "_fleet_workers", lambda settings: FakeWorkers(fail_on=GSM_ROWS[0][0]))
    result = _eval("gsm8k", "--mode", "live", "--limit", "3", "-o", str(tmp_path / "live"), "--data-dir", str(data_dir))
    assert result.exit_code == 1
    assert "1 item(s) could not be generated" in result.output and "rerunning" in result.output
    _no_traceback(result)


def test_no_fleet_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def unreachable(settings):
        raise EvalError("cannot reach the fleet (ConnectionError: no Ray cluster)")

    monkeypatch.setattr(eval_cli, "_fleet_workers", unreachable)
    result = _eval("gsm8k", "--mode", "live", "-o", str(tmp_path / "o"), "--data-dir", str(write_data(tmp_path / "d")))
    assert result.exit_code == 1 and "cannot reach the fleet" in result.output
    _no_traceback(result)


def test_missing_data_dir_in_live_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(eval_cli, "_fleet_workers", lambda settings: FakeWorkers())
    result = _eval("gsm8k", "--mode", "live", "--data-dir", str(tmp_path / "nowhere"), "-o", str(tmp_path / "o"))
    assert result.exit_code == 1 and "--data-dir" in result.output
    _no_traceback(result)


def test_interrupt_exits_130(tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Interrupting(FakeWorkers):
        def small(self, request):
            raise KeyboardInterrupt

    monkeypatch.setattr(eval_cli, "_fleet_workers", lambda settings: Interrupting())
    result = _eval(
        "gsm8k", "--mode", "live", "--concurrency", "1", "-o", str(tmp_path / "o"), "--data-dir", str(data_dir)
    )
    assert result.exit_code == EXIT_INTERRUPTED and "resume" in result.output
