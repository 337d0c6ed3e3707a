"""make bench's rewriting of the tables between a document's markers."""

from __future__ import annotations

from pathlib import Path

from benchmarks.report import replace


def test_a_table_fills_empty_markers_and_replaces_an_earlier_one(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("intro\n<!-- bench:demo:begin -->\n<!-- bench:demo:end -->\noutro\n")
    assert replace(doc, "demo", "| a |\n|---|")
    assert doc.read_text() == "intro\n<!-- bench:demo:begin -->\n| a |\n|---|\n<!-- bench:demo:end -->\noutro\n"
    assert replace(doc, "demo", "| b |")
    assert doc.read_text() == "intro\n<!-- bench:demo:begin -->\n| b |\n<!-- bench:demo:end -->\noutro\n"


def test_a_document_without_the_markers_is_left_alone(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("<!-- bench:scale:begin -->\n<!-- bench:scale:end -->\n")
    assert not replace(doc, "demo", "| a |")
    assert doc.read_text() == "<!-- bench:scale:begin -->\n<!-- bench:scale:end -->\n"
