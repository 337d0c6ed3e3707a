"""The `slmflow verify` contract and train + calibrate end to end on a tiny generated dataset."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from slmflow.verify_cli import calibrate_command, train_command, verify_command

app = typer.Typer()
app.command("verify")(verify_command)
verifier_app = typer.Typer()
verifier_app.command("train")(train_command)
verifier_app.command("calibrate")(calibrate_command)
app.add_typer(verifier_app, name="verifier")
runner = CliRunner()

MATH = {"id": "m", "kind": "math", "question": "Tom has 3 bags of 4 apples. He eats 2. How many are left?",
        "answer": "He has 3 * 4 = 12 apples.\nAfter eating, 12 - 2 = 10 are left.\n#### 10"}
TOOL = {"id": "t", "kind": "tool_call", "question": "Weather in Paris?", "answer": "get_weather(town='Paris')",
        "tools": [{"name": "get_weather", "description": "Weather for a city",
                   "parameters": {"type": "dict", "required": ["city"], "properties": {"city": {"type": "string"}}}}]}
ANSWER = {"id": "a", "kind": "answer", "question": "Language?", "answer": "It is written in Rust [1].",
          "evidence": ["Qdrant is written in Rust."]}
CLASSIFY = {"id": "c", "kind": "classify", "question": "Where is my parcel?", "answer": "shipping",
            "choices": ["shipping", "billing"]}
EXTRACT = {"id": "e", "kind": "extract", "question": "Order 7", "answer": "{\"order\": 7}",
           "schema": {"type": "object", "properties": {"order": {"type": "string"}}}}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_verify_writes_one_line_per_input_in_order(tmp_path: Path) -> None:
    rows = [MATH, TOOL, ANSWER, CLASSIFY, EXTRACT, {**MATH, "id": "m2", "answer": MATH["answer"].replace("10", "11")}]
    result = runner.invoke(app, ["verify", "--input", str(write_jsonl(tmp_path / "in.jsonl", rows)),
                                 "--output", str(tmp_path / "out.jsonl")])
    assert result.exit_code == 0, result.output
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [o["id"] for o in out] == ["m", "t", "a", "c", "e", "m2"]
    assert all(set(o) == {"id", "accept", "score", "reasons"} and 0 <= o["score"] <= 1 for o in out)
    by_id = {o["id"]: o for o in out}
    assert by_id["m"]["accept"] and by_id["a"]["accept"] and by_id["c"]["accept"]
    assert not by_id["t"]["accept"] and "city" in " ".join(by_id["t"]["reasons"])
    assert not by_id["e"]["accept"] and not by_id["m2"]["accept"]
    assert "items/s" in result.output


@pytest.mark.parametrize("line,needle", [
    ("{not json", "line 2: not JSON"),
    ('{"id": "x", "kind": "poem", "question": "q", "answer": "a"}', "line 2: kind"),
    ('{"id": "x", "kind": "math", "question": "q"}', "line 2: answer: Field required"),
    ("[1, 2]", "line 2: expected a JSON object"),
])
def test_bad_line_is_named_without_a_traceback(tmp_path: Path, line: str, needle: str) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(MATH) + "\n" + line + "\n")
    result = runner.invoke(app, ["verify", "--input", str(src), "--output", str(tmp_path / "out.jsonl")])
    assert result.exit_code == 1
    assert needle in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out.jsonl").exists()


def test_missing_input_file_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["verify", "--input", str(tmp_path / "nope.jsonl"), "--output", str(tmp_path / "o")])
    assert result.exit_code == 1 and "cannot read" in result.output


def tiny_data(root: Path, n: int = 90) -> Path:
    """A few dozen synthetic items per source, in the shapes of the real files."""
    rng = random.Random(0)
    (root / "gsm8k").mkdir(parents=True)
    rows = []
    for i in range(n):
        a, b, c = rng.randint(2, 9), rng.randint(2, 9), rng.randint(1, 5)
        rows.append({"question": f"Item {i}: Ann has {a} boxes of {b} pens and gives away {c}. How many are left?",
                     "answer": f"She has {a}*{b} = <<{a}*{b}={a * b}>>{a * b} pens.\n"
                               f"She has {a * b}-{c} = <<{a * b}-{c}={a * b - c}>>{a * b - c} left.\n#### {a * b - c}"})
    write_jsonl(root / "gsm8k" / "train.jsonl", rows)
    bfcl = root / "bfcl_v4"
    (bfcl / "possible_answer").mkdir(parents=True)
    fn = {"name": "math.area", "description": "Area of a rectangle given width and height.",
          "parameters": {"type": "dict", "required": ["width", "height"],
                         "properties": {"width": {"type": "integer"}, "height": {"type": "integer"},
                                        "unit": {"type": "string", "enum": ["m", "cm"]}}}}
    items, truths = [], []
    for i in range(n):
        w, h = rng.randint(1, 50), rng.randint(51, 99)
        items.append({"id": f"simple_python_{i}", "question": [[{"role": "user",
                      "content": f"Find the area of a rectangle {w} wide and {h} high."}]], "function": [fn]})
        truths.append({"id": f"simple_python_{i}", "ground_truth": [{"math.area": {"width": [w], "height": [h],
                                                                                   "unit": ["", "m"]}}]})
    write_jsonl(bfcl / "BFCL_v4_simple_python.json", items)
    write_jsonl(bfcl / "possible_answer" / "BFCL_v4_simple_python.json", truths)
    for cat in ("multiple", "parallel", "parallel_multiple"):
        write_jsonl(bfcl / f"BFCL_v4_{cat}.json", [])
        write_jsonl(bfcl / "possible_answer" / f"BFCL_v4_{cat}.json", [])
    write_jsonl(bfcl / "BFCL_v4_irrelevance.json", [
        {"id": f"irrelevance_{i}", "question": [[{"role": "user", "content": f"Who wrote poem number {i}?"}]],
         "function": [fn]} for i in range(n // 3)])
    (root / "pubmedqa").mkdir()
    (root / "pubmedqa" / "pqal_dev.json").write_text(json.dumps({
        str(i): {"QUESTION": f"Does drug {i} help?", "LONG_ANSWER": "Yes.",
                 "CONTEXTS": [f"In a trial of {100 + i} patients, Drug{i} lowered blood pressure by {i % 9 + 2} points "
                              f"compared with placebo in Boston. The effect was larger in older patients than in "
                              f"younger patients during the first year."]}
        for i in range(n)}))
    return root


def test_train_and_calibrate_end_to_end(tmp_path: Path) -> None:
    data, weights = tiny_data(tmp_path / "data"), tmp_path / "weights"
    result = runner.invoke(app, ["verifier", "train", "--data", str(data), "--out", str(weights), "--seed", "1"])
    assert result.exit_code == 0, result.output
    first = {p.name: p.read_text() for p in weights.glob("*.json")}
    assert set(first) == {"math.json", "tool_call.json", "answer.json"}
    assert sum(p.stat().st_size for p in weights.glob("*.json")) < 20_000_000

    again = runner.invoke(app, ["verifier", "train", "--data", str(data), "--out", str(weights), "--seed", "1"])
    assert again.exit_code == 0
    assert {p.name: p.read_text() for p in weights.glob("*.json")} == first  # reproducible

    result = runner.invoke(app, ["verifier", "calibrate", "--target-error", "0.05", "--data", str(data),
                                 "--weights", str(weights), "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert "escalation" in result.output
    for p in weights.glob("*.json"):
        meta = json.loads(p.read_text())["meta"]
        assert meta["calibrated"]["target_error"] == 0.05
        assert meta["calibrated"]["error"] <= 0.05

    labelled = write_jsonl(tmp_path / "labelled.jsonl", [{**MATH, "label": True},
                                                         {**MATH, "id": "w", "answer": "3 * 4 = 13\n#### 13",
                                                          "label": False}])
    result = runner.invoke(app, ["verifier", "calibrate", "--target-error", "0.1", "--labelled", str(labelled),
                                 "--weights", str(weights)])
    assert result.exit_code == 0, result.output
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["verify", "--input", str(labelled), "--output", str(out), "--weights", str(weights)])
    assert result.exit_code == 0 and len(out.read_text().splitlines()) == 2


def test_calibrate_without_weights_fails_cleanly(tmp_path: Path) -> None:
    labelled = write_jsonl(tmp_path / "l.jsonl", [{**MATH, "label": True}])
    result = runner.invoke(app, ["verifier", "calibrate", "--target-error", "0.1", "--labelled", str(labelled),
                                 "--weights", str(tmp_path / "none")])
    assert result.exit_code == 1 and "verifier train" in result.output


def test_choose_threshold_meets_the_target() -> None:
    import numpy as np

    from verification.calibrate import choose_threshold

    scores = np.array([0.9, 0.8, 0.8, 0.7, 0.4, 0.2])
    labels = np.array([1, 1, 0, 1, 0, 0])
    t, err, esc, ok = choose_threshold(scores, labels, 0.0)
    assert ok and t == 0.9 and err == 0 and esc == pytest.approx(5 / 6)
    t, err, esc, ok = choose_threshold(scores, labels, 0.25)
    assert ok and t == 0.7 and err == 0.25 and esc == pytest.approx(2 / 6)
    assert not choose_threshold(np.array([0.5]), np.array([0]), 0.0)[3]


def test_choose_threshold_reweights_to_a_production_mix() -> None:
    import numpy as np

    from verification.calibrate import choose_threshold

    scores = np.array([0.9, 0.8, 0.7, 0.6])
    labels = np.array([1, 0, 0, 0])  # 75% wrong as generated
    assert choose_threshold(scores, labels, 0.2)[0] == 0.9
    # Reweighted to 10% wrong, accepting everything has an error of 10%; to 40%, only the top two fit.
    t, err, esc, ok = choose_threshold(scores, labels, 0.2, wrong_share=0.1)
    assert ok and t == 0.6 and err == pytest.approx(0.1) and esc == pytest.approx(0.0)
    t, err, esc, ok = choose_threshold(scores, labels, 0.2, wrong_share=0.4)
    w_right, w_wrong = 0.6 / 0.25, 0.4 / 0.75
    assert ok and t == 0.8 and err == pytest.approx(w_wrong / (w_right + w_wrong))
    assert esc == pytest.approx(2 * w_wrong / (w_right + 3 * w_wrong))
