"""The `slmflow verify` contract, and train + calibrate end to end on a small real fixture."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.verification_data import small_copy
from tests.support.verify_cli import app, runner

MATH = {
    "id": "m",
    "kind": "math",
    "question": "Tom has 3 bags of 4 apples. He eats 2. How many are left?",
    "answer": "He has 3 * 4 = 12 apples.\nAfter eating, 12 - 2 = 10 are left.\n#### 10",
}
TOOL = {
    "id": "t",
    "kind": "tool_call",
    "question": "Weather in Paris?",
    "answer": "get_weather(town='Paris')",
    "tools": [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "dict", "required": ["city"], "properties": {"city": {"type": "string"}}},
        }
    ],
}
ANSWER = {
    "id": "a",
    "kind": "answer",
    "question": "Language?",
    "answer": "It is written in Rust [1].",
    "evidence": ["Qdrant is written in Rust."],
}
CLASSIFY = {
    "id": "c",
    "kind": "classify",
    "question": "Where is my parcel?",
    "answer": "shipping",
    "choices": ["shipping", "billing"],
}
EXTRACT = {
    "id": "e",
    "kind": "extract",
    "question": "Order 7",
    "answer": '{"order": 7}',
    "schema": {"type": "object", "properties": {"order": {"type": "string"}}},
}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_verify_writes_one_line_per_input_in_order(tmp_path: Path) -> None:
    rows = [MATH, TOOL, ANSWER, CLASSIFY, EXTRACT, {**MATH, "id": "m2", "answer": MATH["answer"].replace("10", "11")}]
    result = runner.invoke(
        app,
        ["verify", "--input", str(write_jsonl(tmp_path / "in.jsonl", rows)), "--output", str(tmp_path / "out.jsonl")],
    )
    assert result.exit_code == 0, result.output
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [o["id"] for o in out] == ["m", "t", "a", "c", "e", "m2"]
    assert all(set(o) == {"id", "accept", "score", "reasons"} and 0 <= o["score"] <= 1 for o in out)
    by_id = {o["id"]: o for o in out}
    assert by_id["m"]["accept"] and by_id["a"]["accept"] and by_id["c"]["accept"]
    assert not by_id["t"]["accept"] and "city" in " ".join(by_id["t"]["reasons"])
    assert not by_id["e"]["accept"] and not by_id["m2"]["accept"]
    assert "items/s" in result.output


@pytest.mark.parametrize(
    "line,needle",
    [
        ("{not json", "line 2: not JSON"),
        ('{"id": "x", "kind": "poem", "question": "q", "answer": "a"}', "line 2: kind"),
        ('{"id": "x", "kind": "math", "question": "q"}', "line 2: answer: Field required"),
        ("[1, 2]", "line 2: expected a JSON object"),
    ],
)
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


def test_train_and_calibrate_end_to_end(tmp_path: Path) -> None:
    data, weights = small_copy(tmp_path / "data"), tmp_path / "weights"
    result = runner.invoke(app, ["verifier", "train", "--data", str(data), "--out", str(weights), "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert "out-of-fold balanced accuracy" in result.output
    first = {p.name: p.read_text() for p in weights.glob("*.json")}
    assert set(first) == {"answer.json"}
    meta = json.loads(first["answer.json"])["meta"]
    assert set(meta["sources"]) == {
        "begin/dev_cmu",
        "begin/dev_tc",
        "pubmedqa/half0",
        "pubmedqa/half0, another abstract",
    }

    again = runner.invoke(app, ["verifier", "train", "--data", str(data), "--out", str(weights), "--seed", "1"])
    assert again.exit_code == 0
    assert {p.name: p.read_text() for p in weights.glob("*.json")} == first  # reproducible

    right = {**ANSWER, "label": True}
    wrong = {**ANSWER, "id": "w", "answer": "It is written in Java [1].", "label": False}
    labelled = write_jsonl(tmp_path / "labelled.jsonl", [right, wrong])
    result = runner.invoke(
        app, ["verifier", "calibrate", "--target-error", "0.1", "--labelled", str(labelled), "--weights", str(weights)]
    )
    assert result.exit_code == 0, result.output
    assert "escalation" in result.output
    meta = json.loads((weights / "answer.json").read_text())["meta"]
    assert meta["calibrated"]["target_error"] == 0.1 and meta["calibrated"]["error"] <= 0.1


def test_calibrate_without_items_of_a_learned_kind_fails_cleanly(tmp_path: Path) -> None:
    labelled = write_jsonl(tmp_path / "l.jsonl", [{**MATH, "label": True}])
    result = runner.invoke(
        app, ["verifier", "calibrate", "--target-error", "0.1", "--labelled", str(labelled), "--weights", str(tmp_path)]
    )
    assert result.exit_code == 1 and "no labelled items of a kind with a learned model (answer)" in result.output
    assert not list(tmp_path.glob("*.json"))


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


# ------------------------------------------------------------- --fleet (a fake fleet, no engines)


class _FakeFleet:
    """Stands in for the fleet's Workers: the cross-check model solves math as 10 and labels
    everything 'billing'."""

    def __init__(self) -> None:
        self.kinds: list[str] = []

    def small(self, request):
        from slmflow.core.records import Draft
        from verification.independent import PROGRAM_PROMPT

        self.kinds.append(request.kind)
        if request.messages[0].content == PROGRAM_PROMPT:
            text = "```python\nprint(3 * 4 - 2)\n```"
        elif request.kind == "classify":
            text = "billing"
        else:
            text = "The answer is 10"
        return Draft(model="fake-small", text=text, output=text, tokens_in=1, tokens_out=1, latency_s=0.0)


def test_verify_is_model_free_without_fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from workers import crosscheck

    def no_fleet(*args, **kwargs):
        raise AssertionError("the fleet must not be touched without --fleet")

    monkeypatch.setattr(crosscheck, "connect_fleet", no_fleet)
    result = runner.invoke(
        app,
        ["verify", "--input", str(write_jsonl(tmp_path / "in.jsonl", [MATH])), "--output", str(tmp_path / "out.jsonl")],
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        app,
        [
            "verify",
            "--input",
            str(tmp_path / "in.jsonl"),
            "--output",
            str(tmp_path / "out.jsonl"),
            "--cross-check",
            "other",
        ],
    )
    assert result.exit_code == 1 and "need --fleet" in result.output


def test_verify_with_fleet_adds_independent_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from workers import crosscheck

    fake, asked, closed = _FakeFleet(), [], []

    def connect(settings, name):
        asked.append(name)
        return crosscheck.FleetCrossCheck(fake, name or "fake-small", lambda: closed.append(True))

    monkeypatch.setattr(crosscheck, "connect_fleet", connect)
    wrong = {**MATH, "id": "m-wrong", "answer": "He has 3 * 4 = 12 apples.\nThen 12 + 2 = 14 are left.\n#### 14"}
    rows = [MATH, wrong, CLASSIFY, ANSWER]
    result = runner.invoke(
        app,
        [
            "verify",
            "--input",
            str(write_jsonl(tmp_path / "in.jsonl", rows)),
            "--output",
            str(tmp_path / "out.jsonl"),
            "--fleet",
            "--cross-check",
            "qwen",
        ],
    )
    assert result.exit_code == 0, result.output
    assert asked == ["qwen"] and closed == [True]
    out = {o["id"]: o for o in map(json.loads, (tmp_path / "out.jsonl").read_text().splitlines())}
    assert list(out) == ["m", "m-wrong", "c", "a"]
    assert all(set(o) == {"id", "accept", "score", "reasons"} for o in out.values())
    assert out["m"]["accept"] and out["a"]["accept"]
    assert not out["m-wrong"]["accept"]
    assert any(r.startswith("program_of_thought:") and "prints 10" in r for r in out["m-wrong"]["reasons"])
    assert not out["c"]["accept"] and any("billing" in r for r in out["c"]["reasons"])
    assert "program_of_thought 1 agree, 1 disagree" in result.output
    assert "answer" in fake.kinds and "classify" in fake.kinds  # answers are not cross-checked, c is


def test_verify_with_fleet_reports_an_unreachable_fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from workers import crosscheck

    def down(settings, name):
        raise ConnectionError("no Ray cluster at 127.0.0.1:6390")

    monkeypatch.setattr(crosscheck, "connect_fleet", down)
    result = runner.invoke(
        app,
        [
            "verify",
            "--input",
            str(write_jsonl(tmp_path / "in.jsonl", [MATH])),
            "--output",
            str(tmp_path / "out.jsonl"),
            "--fleet",
        ],
    )
    assert result.exit_code == 1 and "cannot use the fleet" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out.jsonl").exists()


# ------------------------------------------------------------------ --from-history


def _label(kind: str, question: str, small, agree: bool, accepted: bool = True, **extra) -> dict:
    return {
        "job": "j",
        "run_id": "r",
        "item_id": extra.pop("item", "i"),
        "task_id": "t",
        "kind": kind,
        "question": question,
        "small_output": small,
        "small_score": 0.1,
        "frontier_output": "x",
        "frontier_accepted": accepted,
        "agree": agree,
        **extra,
    }


def test_train_from_history_uses_escalation_labels(tmp_path: Path) -> None:
    data, weights = small_copy(tmp_path / "data"), tmp_path / "weights"
    prompt = "Context:\n[1] Qdrant is written in Rust.\n[2] It stores vectors.\n\nWhat is Qdrant written in?"
    rows = [_label("answer", f"{prompt} ({i})", "It is written in Rust [1].", True, item=f"a{i}") for i in range(12)]
    rows += [_label("answer", f"{prompt} ({i})", "It is written in Java [1].", False, item=f"b{i}") for i in range(12)]
    rows += [rows[0], {**rows[1], "agree": False}]  # a duplicate; the same answer labelled both ways
    rows += [_label("math", "What is 2 + 2?", "2 + 2 = 4\n#### 4", True, item="m")]
    labels = tmp_path / "runs" / "labels.jsonl"
    labels.parent.mkdir()
    labels.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = [
        "verifier",
        "train",
        "--data",
        str(data),
        "--out",
        str(weights),
        "--seed",
        "1",
        "--from-history",
        str(labels),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "27 lines, 23 labels used" in text and "answer: 23 (11 right, 12 wrong)" in text
    assert "kind math: no learned model" in text
    assert "skipped 1: duplicate" in text and "skipped 2: the same answer labelled both ways" in text
    meta = json.loads((weights / "answer.json").read_text())["meta"]
    assert meta["sources"]["history"] == 23
    first = {p.name: p.read_text() for p in weights.glob("*.json")}
    assert runner.invoke(app, args).exit_code == 0
    assert {p.name: p.read_text() for p in weights.glob("*.json")} == first  # deterministic


def test_train_from_history_defaults_to_the_results_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from slmflow.core.settings import get_settings

    monkeypatch.setenv("SLMFLOW_RESULTS_DIR", str(tmp_path / "runs"))
    get_settings.cache_clear()
    try:
        result = runner.invoke(app, ["verifier", "train", "--data", str(tmp_path / "none"), "--from-history"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1 and "labels.jsonl" in result.output and str(tmp_path / "runs") in result.output


def test_train_from_history_reports_bad_lines_and_skips(tmp_path: Path) -> None:
    data, weights = small_copy(tmp_path / "data", lines=40, abstracts=20), tmp_path / "weights"
    prompt = "Context:\n[1] Qdrant is written in Rust.\n\nWhat is Qdrant written in?"
    lines = [
        json.dumps(_label("answer", prompt, "Rust [1].", True)),
        "{not json",
        "[1, 2]",
        json.dumps({"kind": "answer"}),
        json.dumps(_label("extract", "q", {"a": 1}, False)),
        json.dumps(_label("answer", prompt, "Java [1].", False, accepted=False)),
        json.dumps(_label("tool_call", "q", "f(a=1)", True)),
    ]
    labels = tmp_path / "labels.jsonl"
    labels.write_text("\n".join(lines) + "\n")
    result = runner.invoke(
        app, ["verifier", "train", "--data", str(data), "--out", str(weights), "--from-history", str(labels)]
    )
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "7 lines, 1 labels used" in text
    assert "line 2: not JSON" in text and "line 3: expected a JSON object" in text and "line 4: missing" in text
    assert "kind extract: no learned model" in text and "frontier answer the verifier also rejected" in text
    assert "kind tool_call: no learned model" in text
    missing = runner.invoke(
        app, ["verifier", "train", "--data", str(data), "--from-history", str(tmp_path / "nope.jsonl")]
    )
    assert missing.exit_code == 1 and "cannot read escalation labels" in missing.output
