"""The verifier on real model outputs judged by people or an answer key, per source.

    python benchmarks/verifier.py [--data DIR] [--plot docs/img/verifier_sources.png] [--markdown FILE]

Every item goes through `slmflow verify`'s line format (`verification.jsonl`) and the verifier as
the flow and the CLI configure it by default (`default`), and through the rule checks alone
(`rules`). Per source: balanced accuracy, AUROC of the score, the share of correct answers
accepted, the share of wrong answers caught (rejected), and wall-clock ms per item (p50, p95).

The split column says what each figure may be trusted for:
- `held out`: nothing was fitted on it (BEGIN's Wizard of Wikipedia responses, PubMedQA's odd half,
  BIG-Bench Mistake, the GSM8K answers without alternatives);
- `fitted`: the learned answer model was trained on it (BEGIN CMU-DoG and Topical-Chat, PubMedQA's
  even half, its conclusions with their own abstract and with another): shown for comparison, not
  as a result;
- `dev`: the agreement rule was designed on it (GSM8K answers with alternatives), and BEGIN's
  dev_wow, on which the learned model's features were chosen (its test_wow is the result).

Then the alternatives (`verification.agreement`) on the GSM8K answers of six models: F1 and
precision at flagging wrong answers with three or four alternatives from weaker models (GPT-3),
and a Mixtral -> GPT-4 cascade that escalates what the verifier rejects.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slmflow.core.settings import VerifierSettings, get_settings
from verification import sources as S
from verification.verifier import Verifier


@dataclass
class Row:
    source: str
    split: str
    config: str
    n: int
    right: int
    balanced: float
    auroc: float
    accept_right: float
    catch_wrong: float
    p50: float
    p95: float
    precision: float = float("nan")  # of the answers flagged wrong, the share that were wrong
    f1: float = float("nan")  # at flagging wrong answers


def measure(rows: list[S.Labelled], verifier: Verifier, source: str, split: str, config: str) -> Row:
    accepted, scores, ms = run(rows, verifier)
    return score(rows, accepted, scores, ms, source, split, config)


def run(rows: list[S.Labelled], verifier: Verifier) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    accepted, scores, ms = [], [], []
    for r in rows:
        request = r.item.request()  # the line as `slmflow verify` reads it
        start = time.perf_counter()
        verdict = verifier.verify(request)
        ms.append(1000 * (time.perf_counter() - start))
        accepted.append(verdict.accept)
        scores.append(verdict.score)
    return np.asarray(accepted), np.asarray(scores), np.asarray(ms)


def score(rows, accepted, scores, ms, source, split, config) -> Row:
    from sklearn.metrics import roc_auc_score

    y = np.asarray([r.label for r in rows]) == 1
    accept_right = float(accepted[y].mean()) if y.any() else float("nan")
    catch_wrong = float((~accepted[~y]).mean()) if (~y).any() else float("nan")
    both = y.any() and (~y).any()
    flagged = ~accepted
    tp = float((flagged & ~y).sum())
    precision = tp / flagged.sum() if flagged.any() else float("nan")
    f1 = 2 * precision * catch_wrong / (precision + catch_wrong) if both and precision + catch_wrong else float("nan")
    return Row(
        source=source,
        split=split,
        config=config,
        n=len(rows),
        right=int(y.sum()),
        balanced=(accept_right + catch_wrong) / 2 if both else float("nan"),
        auroc=float(roc_auc_score(y, scores)) if both else float("nan"),
        accept_right=accept_right,
        catch_wrong=catch_wrong,
        p50=float(np.percentile(ms, 50)),
        p95=float(np.percentile(ms, 95)),
        precision=precision if both else float("nan"),
        f1=f1,
    )


def sources(data: Path) -> Iterable[tuple[str, str, list[S.Labelled]]]:
    arithmetic = list(S.bbm(data, "multistep_arithmetic"))
    yield "bbm/multistep_arithmetic", "held out", arithmetic
    # 18 traces marked mistake-free end in a wrong answer (a false equality in their steps).
    yield (
        "bbm/multistep_arithmetic, label = key",
        "held out",
        [r for r in arithmetic if r.label == 0 or r.meta["answer_right"]],
    )
    for task in S.BBM_TASKS[1:]:
        yield f"bbm/{task}", "held out", list(S.bbm(data, task))
    yield "begin/test_wow", "held out", list(S.begin(data, "test_wow"))
    yield "begin/dev_wow", "dev", list(S.begin(data, "dev_wow"))
    yield "begin/dev_cmu", "fitted", list(S.begin(data, "dev_cmu"))
    yield "begin/dev_tc", "fitted", list(S.begin(data, "dev_tc"))
    yield "pubmedqa conclusions, odd half", "held out", list(S.pubmedqa(data, half=1))
    yield "pubmedqa conclusions + another abstract, odd half", "held out", pubmedqa_pairs(data, 1)
    yield "pubmedqa conclusions + another abstract, even half", "fitted", pubmedqa_pairs(data, 0)
    yield "gsm8k/mixtral", "held out", list(S.gsm8k_answers(data, (S.SMALL,)))
    yield "gsm8k/gpt-4", "held out", list(S.gsm8k_answers(data, (S.FRONTIER,)))
    yield "gsm8k/gpt-3 (4 variants)", "held out", list(S.gsm8k_answers(data, S.WEAKER))
    with_alts = list(S.gsm8k_answers(data, (S.SMALL, *S.WEAKER), alternatives=True))
    yield "gsm8k/mixtral + 4 GPT-3 alternatives", "dev", [r for r in with_alts if r.meta["model"] == S.SMALL]
    yield "gsm8k/gpt-3 + 3 GPT-3 alternatives", "dev", [r for r in with_alts if r.meta["model"] != S.SMALL]
    yield "gsm8k/mixtral and gpt-3, with alternatives", "dev", with_alts


def pubmedqa_pairs(data: Path, half: int) -> list[S.Labelled]:
    """Each conclusion with its own abstract (correct) and with another (wrong)."""
    return [*S.pubmedqa(data, half), *S.pubmedqa_other_abstract(data, half)]


def cascade(data: Path, verifier: Verifier) -> list[str]:
    """Mixtral answers with the four GPT-3 answers as alternatives; rejected ones go to GPT-4."""
    rows = list(S.gsm8k_answers(data, (S.SMALL,), alternatives=True))
    accepted, scores, _ = run(rows, verifier)
    right = np.asarray([r.label for r in rows], dtype=bool)
    frontier = np.asarray([r.meta["frontier_correct"] for r in rows], dtype=bool)
    out = [
        f"GPT-4 alone: accuracy {frontier.mean():.3f}; Mixtral alone: {right.mean():.3f}; "
        f"an oracle escalating exactly Mixtral's wrong answers: {np.where(right, right, frontier).mean():.3f} "
        f"at {(~right).mean():.1%} escalated",
        f"cascade, default verdict: accuracy {np.where(accepted, right, frontier).mean():.3f} "
        f"at {(~accepted).mean():.1%} escalated",
    ]
    order = np.argsort(scores, kind="stable")
    for share in (0.30, 0.35, 0.40, 0.45):
        escalate = np.zeros(len(rows), dtype=bool)
        escalate[order[: round(share * len(rows))]] = True
        out.append(
            f"cascade, lowest-scoring {share:.0%} escalated: accuracy {np.where(escalate, frontier, right).mean():.3f}"
        )
    return out


def disputed(data: Path, verifier: Verifier) -> list[str]:
    """BBM multistep arithmetic traces people marked mistake-free whose final answer is not the
    expression's value, each with the verdict and its first reason."""
    out = []
    for r in S.bbm(data, "multistep_arithmetic"):
        if r.label == 1 and not r.meta["answer_right"]:
            verdict = verifier.verify(r.item.request())
            state = "rejected" if not verdict.accept else "ACCEPTED"
            out.append(f"{r.item.id.rsplit('-', 1)[1]}: {state}; {verdict.reasons[0] if verdict.reasons else ''}")
    return out


def table(rows: list[Row]) -> list[str]:
    out = [
        "| source | split | config | items | correct | balanced acc. | AUROC | correct accepted | wrong caught "
        "| p50 ms | p95 ms |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        out.append(
            f"| {r.source} | {r.split} | {r.config} | {r.n} | {r.right} | {_f(r.balanced)} | {_f(r.auroc)} "
            f"| {_f(r.accept_right)} | {_f(r.catch_wrong)} | {r.p50:.2f} | {r.p95:.2f} |"
        )
    return out


def _f(x: float) -> str:
    return "–" if x != x else f"{x:.3f}"


def plot(rows: list[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [r for r in rows if r.config == "default" and r.split != "fitted"]
    fig, ax = plt.subplots(figsize=(9, 0.42 * len(shown) + 1.2))
    y = np.arange(len(shown))
    ax.barh(y - 0.2, [r.accept_right for r in shown], 0.4, label="correct accepted")
    ax.barh(y + 0.2, [np.nan_to_num(r.catch_wrong) for r in shown], 0.4, label="wrong caught")
    ax.set_yticks(y, [f"{r.source} ({r.split})" for r in shown], fontsize=8)
    ax.invert_yaxis()
    ax.axvline(0.9, color="grey", linestyle=":", linewidth=1)
    ax.set_xlim(0, 1)
    ax.set_xlabel("share (default configuration)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="default: settings data_dir (../shared/data)")
    parser.add_argument("--plot", type=Path, default=None, help="save accept/catch per source as a PNG")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the tables as markdown to this file")
    args = parser.parse_args()
    args.data = args.data or get_settings().data_dir

    # No weights folder: the packaged weights, so the figures are those of what ships, whatever
    # `slmflow verifier train` left in this machine's cache.
    configs = {
        "default": Verifier.configured(VerifierSettings()),
        "rules": Verifier.configured(VerifierSettings(learned=False)),
    }
    rows: list[Row] = []
    for source, split, items in sources(args.data):
        for name, verifier in configs.items():
            run(items[:20], verifier)  # warm caches and lazy imports before timing
            rows.append(measure(items, verifier, source, split, name))
            if name == "default" and not any(r.item.kind == "answer" for r in items):
                break  # the learned model covers answers only: the rules row would repeat this one
    notes = ["Flagging wrong answers (precision / F1), default configuration:"]
    for r in rows:
        if r.config == "default" and r.source.startswith("gsm8k"):
            notes.append(f"  {r.source}: precision {_f(r.precision)}, recall {_f(r.catch_wrong)}, F1 {_f(r.f1)}")
    notes += ["", "Mixtral -> GPT-4 cascade (Mixtral's answers with the four GPT-3 answers as alternatives):"]
    notes += [f"  {line}" for line in cascade(args.data, configs["default"])]
    notes += [
        "",
        "BBM multistep arithmetic, traces marked mistake-free with a wrong answer (trace: verdict; first reason):",
    ]
    notes += [f"  {line}" for line in disputed(args.data, configs["default"])]
    print("\n".join(table(rows)))
    print()
    print("\n".join(notes))
    if args.markdown:
        args.markdown.write_text("\n".join(table(rows)) + "\n\n```\n" + "\n".join(notes) + "\n```\n")
    if args.plot:
        plot(rows, args.plot)
        print(f"\nplot -> {args.plot}")


if __name__ == "__main__":
    main()
