"""`slmflow ingest` / `slmflow collections` through a tiny typer app that registers the two command
functions the way slmflow.cli does: exit codes and messages, never a traceback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from click.testing import Result
from typer.testing import CliRunner

from retrieval.embedder import Embedder
from retrieval.store import EdgeStore
from slmflow.cli.ingest import EXIT_INTERRUPTED, collections_command, ingest_command
from slmflow.core.settings import get_settings

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
app.command("ingest")(ingest_command)
app.command("collections")(collections_command)


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("SLMFLOW_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SLMFLOW_QDRANT_DIR", str(tmp_path / "cache" / "qdrant"))
    for var in ("QDRANT_URL", "SLMFLOW_QDRANT_URL", "SLMFLOW_EMBEDDING_MODEL"):
        monkeypatch.delenv(var, raising=False)
    get_settings.cache_clear()
    yield tmp_path / "cache"
    get_settings.cache_clear()


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    root.mkdir()
    (root / "refunds.md").write_text("Refunds go back to the card within five days.")
    (root / "hours.txt").write_text("The shop opens at nine.")
    return root


def invoke(*args: str) -> tuple[Result, str]:
    result = CliRunner().invoke(app, list(args))
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), (
        result.exception
    )  # a user error must never surface as a traceback
    return result, " ".join(result.output.split())  # rich wraps lines at the terminal width


def test_ingest_then_reingest_then_list(docs: Path) -> None:
    result, out = invoke("ingest", str(docs), "--collection", "shop")
    assert result.exit_code == 0, out
    assert "collection 'shop': 2 documents, 2 chunks" in out
    result, out = invoke("ingest", str(docs), "-c", "shop")
    assert result.exit_code == 0 and "is up to date" in out and "nothing embedded" in out

    result, _ = invoke("collections", "--json")
    listing = json.loads(result.stdout)
    assert result.exit_code == 0 and [c["collection"] for c in listing["collections"]] == ["shop"]
    shop = listing["collections"][0]
    assert (shop["status"], shop["points"], shop["manifest"]["documents"]) == ("complete", 2, 2)
    assert shop["manifest"]["embedding_model"] == "all-MiniLM-L6-v2" and shop["manifest"]["dim"] == 384
    result, out = invoke("collections")
    assert result.exit_code == 0 and "shop" in out and "complete" in out


def test_bad_files_exit_1_after_ingesting_the_rest(docs: Path) -> None:
    (docs / "empty.md").write_text("")
    (docs / "bad.txt").write_bytes(b"\xff\xfe\x00\x00")
    result, out = invoke("ingest", str(docs), "-c", "shop", "--chunk-size", "200", "--overlap", "20")
    assert result.exit_code == 1
    assert "skipped empty.md: empty" in out and "skipped bad.txt: binary file" in out
    assert "2 input(s) could not be used; the rest were ingested" in out
    assert "collection 'shop': 2 documents" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ingest", "{missing}", "-c", "shop"], "does not exist"),
        (["ingest", "{docs}", "-c", "../etc"], "invalid collection name '../etc'"),
        (
            ["ingest", "{docs}", "-c", "shop", "--chunk-size", "100", "--overlap", "100"],
            "need 0 <= overlap < chunk size",
        ),
        (["ingest", "{empty}", "-c", "shop"], "nothing to ingest"),
    ],
)
def test_user_errors_exit_1_with_a_message(docs: Path, tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "empty").mkdir()
    paths = {"missing": tmp_path / "missing", "docs": docs, "empty": tmp_path / "empty"}
    result, out = invoke(*(a.format(**paths) for a in args))
    assert result.exit_code == 1 and out.startswith("error: ") and message in out


def test_bad_option_values_are_usage_errors(docs: Path) -> None:
    result, out = invoke("ingest", str(docs), "-c", "shop", "--chunk-size", "0")
    assert result.exit_code == 2 and "chunk-size" in out


def test_locked_store_is_a_clear_error(docs: Path, cache_dir: Path) -> None:
    holder = EdgeStore(get_settings().qdrant_dir)
    try:
        for args in (["ingest", str(docs), "-c", "shop"], ["collections"]):
            result, out = invoke(*args)
            assert result.exit_code == 1
            assert f"Qdrant directory {cache_dir / 'qdrant'} is in use by another process" in out
    finally:
        holder.close()


def test_unreachable_server_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QDRANT_URL", "http://127.0.0.1:9")
    get_settings.cache_clear()
    result, out = invoke("collections")
    assert result.exit_code == 1 and "error: Qdrant at http://127.0.0.1:9" in out


def test_interrupt_exits_130_and_the_rerun_resumes(docs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_embed = Embedder.embed

    def interrupted(self: Embedder, texts: list[str]) -> list[list[float]]:
        raise KeyboardInterrupt

    monkeypatch.setattr(Embedder, "embed", interrupted)
    result, out = invoke("ingest", str(docs), "-c", "shop")
    assert result.exit_code == EXIT_INTERRUPTED
    assert "interrupted before collection 'shop' was finished; run the same command again" in out
    result, _ = invoke("collections", "--json")
    assert json.loads(result.stdout)["collections"][0]["status"] == "incomplete"

    monkeypatch.setattr(Embedder, "embed", real_embed)
    result, out = invoke("ingest", str(docs), "-c", "shop")
    assert result.exit_code == 0 and "resumed an interrupted ingest" in out


def test_no_collections(cache_dir: Path) -> None:
    result, out = invoke("collections")
    assert result.exit_code == 0 and f"no collections in {cache_dir / 'qdrant'}" in out
