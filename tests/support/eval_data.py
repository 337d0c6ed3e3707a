"""Tiny evaluation data written by the tests (never the shared data) and a fake fleet for live mode."""

from __future__ import annotations

import json
from pathlib import Path

from evals.adapters import get_adapter
from evals.synthetic import demo_records, write_demo
from slmflow.core.records import Draft, GenerationRequest

GSM_ROWS = [
    ("A has 3 apples and buys 4. How many?", "3 + 4 = <<3+4=7>>7\n#### 7"),
    ("B reads 10 pages a day for 3 days. Pages?", "10 * 3 = <<10*3=30>>30\n#### 30"),
    ("C pays $2 for each of 6 pens. Total?", "2 * 6 = <<2*6=12>>12\n#### 12"),
    ("D had 20 and gave 5 away. Left?", "20 - 5 = <<20-5=15>>15\n#### 15"),
    ("E earns 1,000 a week for 2 weeks?", "1000 * 2 = <<1000*2=2000>>2000\n#### 2,000"),
    ("F has 9 cards and splits them in 3. Each?", "9 / 3 = <<9/3=3>>3\n#### 3"),
]


def write_data(root: Path) -> Path:
    (root / "gsm8k").mkdir(parents=True)
    (root / "gsm8k" / "train.jsonl").write_text(
        "".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in GSM_ROWS)
    )
    (root / "pubmedqa").mkdir()
    (root / "pubmedqa" / "pqal_dev.json").write_text(
        json.dumps(
            {
                str(100 + i): {
                    "QUESTION": f"Does treatment {i} help?",
                    "final_decision": label,
                    "CONTEXTS": [f"Treatment {i} was studied in a trial."],
                }
                for i, label in enumerate(["yes", "no", "maybe", "yes", "no", "yes"])
            }
        )
    )
    return root


def write_synthetic(dataset: str, data_dir: Path, path: Path, **kw) -> Path:
    adapter = get_adapter(dataset)
    write_demo(path, demo_records(adapter, adapter.load(data_dir), seed=3, **kw))
    return path


class FakeWorkers:
    """A fleet stand-in: the frontier answers right, the small model right on even items."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.calls = 0
        self.fail_on = fail_on

    def _draft(self, model: str, text: str) -> Draft:
        return Draft(
            model=model, text=text, output=text, tokens_in=50, tokens_out=20, latency_s=0.01, finish_reason="stop"
        )

    def _question(self, request: GenerationRequest) -> str:
        return request.messages[-1].content

    def small(self, request: GenerationRequest) -> Draft:
        self.calls += 1
        i = next(i for i, (q, _) in enumerate(GSM_ROWS) if q == self._question(request))
        if self.fail_on and GSM_ROWS[i][0] == self.fail_on:
            raise TimeoutError("engine timed out")
        answer = GSM_ROWS[i][1] if i % 2 == 0 else GSM_ROWS[i][1].replace("####", "#### 9")
        return self._draft("smollm2-135m", answer.replace("<<", "").replace(">>", " "))

    def frontier(self, request: GenerationRequest) -> Draft:
        i = next(i for i, (q, _) in enumerate(GSM_ROWS) if q == self._question(request))
        return self._draft("frontier-standin", GSM_ROWS[i][1])
