"""The evaluation's outputs: a markdown report, the accuracy-vs-escalation plot, metrics.json
(everything in the report, machine-readable) and items.jsonl (one result per item)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from evals.metrics import CurvePoint, Policy
from evals.replay import EvalSummary, Evaluated

SYNTHETIC_BANNER = (
    "> **SYNTHETIC DATA — not a measurement.** The answers in this replay file "
    "were generated from the dataset's gold answers for testing the harness. "
    "Real figures come from `--mode live` or recorded production logs."
)
CURVE_ROWS = 11  # curve points shown in the markdown table (the full curve is in metrics.json)


def write_outputs(summary: EvalSummary, evaluated: Sequence[Evaluated], out_dir: Path, source: str) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "report": out_dir / "report.md",
        "plot": out_dir / "curve.png",
        "metrics": out_dir / "metrics.json",
        "items": out_dir / "items.jsonl",
    }
    plot_curve(summary, paths["plot"])
    paths["metrics"].write_text(json.dumps({"source": source, **summary.model_dump(mode="json")}, indent=2) + "\n")
    with paths["items"].open("w", encoding="utf-8") as fh:
        for e in evaluated:
            fh.write(e.result.model_dump_json() + "\n")
    paths["report"].write_text(render_markdown(summary, source, paths["plot"].name))
    return paths


def plot_curve(summary: EvalSummary, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: never needs a display
    import matplotlib.pyplot as plt

    s, f = summary.small, summary.frontier
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=120)
    ax.plot([0, 1], [s.accuracy, f.accuracy], ls="--", color="grey", label="random routing")
    if summary.curve:
        ax.plot(
            [p.escalation_rate for p in summary.curve],
            [p.accuracy for p in summary.curve],
            marker=".",
            color="tab:blue",
            label="cascade (verifier-score threshold)",
        )
    if summary.cascade:
        ax.scatter(
            [summary.cascade.escalation_rate],
            [summary.cascade.accuracy],
            s=80,
            marker="*",
            color="tab:green",
            zorder=5,
            label="verifier's accept decision",
        )
    ax.scatter(
        [0], [s.accuracy], s=60, color="tab:orange", zorder=5, label=f"small only ({', '.join(summary.small_models)})"
    )
    ax.scatter(
        [1],
        [f.accuracy],
        s=60,
        color="tab:red",
        zorder=5,
        label=f"frontier only ({', '.join(summary.frontier_models)})",
    )
    ax.set_xlim(-0.03, 1.03)
    ax.set_xlabel("escalation rate (share of items sent to the frontier)")
    ax.set_ylabel("accuracy")
    title = f"{summary.dataset}: accuracy vs escalation (n={summary.n_items})"
    if summary.synthetic:
        title = "SYNTHETIC DATA — " + title
    elif not summary.verifier_supported:
        title += "\nverifier does not support this kind yet"
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


def render_markdown(summary: EvalSummary, source: str, plot_name: str) -> str:
    s = summary
    lines = [f"# Evaluation: {s.dataset}", ""]
    if s.synthetic:
        lines += [SYNTHETIC_BANNER, ""]
    lines += [
        f"- source: `{source}`",
        f"- items: {s.n_items} ({s.computed} evaluated now, {s.cached} from the cache)",
        f"- small model(s): {', '.join(s.small_models)}; frontier: {', '.join(s.frontier_models)}",
        f"- verifier kind: `{s.verify_kind}`"
        + ("" if s.verifier_supported else f" — **not supported yet**: {s.verifier_note}"),
        "",
    ]
    if s.warnings:
        lines += ["**Warnings**", "", *(f"- {w}" for w in s.warnings), ""]
    lines += ["## Policies", "", _policy_table(s), ""]
    if s.savings_vs_frontier is not None and s.cascade:
        lines += [
            f"The verified cascade costs **{1 - s.savings_vs_frontier:.1%}** of sending "
            f"every item to the frontier (saves {s.savings_vs_frontier:.1%}); its accuracy "
            f"is {_pp(s.cascade.accuracy - s.frontier.accuracy)} against the frontier alone "
            f"and {_pp(s.cascade.accuracy - s.small.accuracy)} against the small model "
            "alone.",
            "",
        ]
    if not s.verifier_supported:
        lines += [
            "Cascade figures and the threshold curve need the verifier's judgement of the "
            "small answers; they will appear once the verifier supports "
            f"`{s.verify_kind}`. Until then only the small and frontier baselines are "
            "measured.",
            "",
        ]
    if s.curve_summary:
        cs = s.curve_summary
        lines += [
            "## Threshold curve",
            "",
            "Escalate when the verifier's score is below a threshold; one point per "
            "distinct score. PGR = (accuracy − small) / (frontier − small).",
            "",
        ]
        if cs.apgr is None:
            lines += [f"APGR: n/a — {cs.note}", ""]
        else:
            lines += [
                "| APGR | " + " | ".join(f"escalation for {k} of the gap" for k in cs.escalation_for_pgr) + " |",
                "|---|" + "---|" * len(cs.escalation_for_pgr),
                f"| {cs.apgr:.3f} | " + " | ".join(_rate(v) for v in cs.escalation_for_pgr.values()) + " |",
                "",
                "Random routing has APGR 0.5 and needs 50% / 80% escalation.",
                "",
            ]
        lines += [_curve_table(s.curve, s.score_name), ""]
    if s.verifier_quality:
        q = s.verifier_quality
        lines += [
            "## Verifier on the small answers",
            "",
            "| accept rate | precision (accepted & correct) | recall (correct & accepted) "
            "| false-accept rate (wrong & accepted) | errors |",
            "|---|---|---|---|---|",
            f"| {q.accept_rate:.1%} | {_opt(q.precision)} | {_opt(q.recall)} | "
            f"{_opt(q.false_accept_rate)} | {q.errors} |",
            "",
        ]
        if q.top_reasons:
            lines += ["Most frequent failing checks: " + ", ".join(f"`{name}` ({n})" for name, n in q.top_reasons), ""]
    lines += [
        f"![accuracy vs escalation]({plot_name})",
        "",
        "Costs use real token counts times each model's token price (SLMFLOW_PRICES, else LiteLLM's map; "
        "docs/costs.md); the "
        "cascade always pays for the small call and adds the frontier call when it "
        "escalates. The frontier's recorded answer stands in for the escalated answer "
        "(in production the escalated prompt also carries the verifier's reasons).",
        "",
    ]
    return "\n".join(lines)


def _policy_table(s: EvalSummary) -> str:
    policies: list[Policy] = [s.small, s.frontier] + ([s.cascade] if s.cascade else [])
    score_col = f" {s.score_name} |" if s.score_name else ""
    extra_cols = sorted({k for v in s.extra.values() for k in v})
    head = (
        "| policy | accuracy |"
        + score_col
        + "".join(f" {k} |" for k in extra_cols)
        + " escalation | USD per 1k tasks |"
    )
    rows = [head, "|" + "---|" * (head.count("|") - 1)]
    keys = {"small only": "small", "frontier only": "frontier", "verified cascade": "cascade"}
    for p in policies:
        extra = s.extra.get(keys[p.name], {})
        rows.append(
            f"| {p.name} | {p.accuracy:.1%} |"
            + (f" {p.score:.3f} |" if s.score_name else "")
            + "".join(f" {extra.get(k, float('nan')):.3f} |" for k in extra_cols)
            + f" {p.escalation_rate:.1%} | {p.usd_per_1k:.4f} |"
        )
    return "\n".join(rows)


def _curve_table(curve: Sequence[CurvePoint], score_name: str | None) -> str:
    step = max(1, (len(curve) - 1) // (CURVE_ROWS - 1))
    shown = list(curve[::step])
    if shown[-1] is not curve[-1]:
        shown.append(curve[-1])
    score_col = f" {score_name} |" if score_name else ""
    rows = [
        "| threshold | escalation | accuracy |" + score_col + " PGR | USD per 1k |",
        "|---|---|---|" + ("---|" if score_name else "") + "---|---|",
    ]
    for p in shown:
        threshold = "all" if p.threshold is None else f"< {p.threshold:.3f}"
        rows.append(
            f"| {threshold} | {p.escalation_rate:.1%} | {p.accuracy:.1%} |"
            + (f" {p.score:.3f} |" if score_name else "")
            + f" {_opt(p.pgr, pct=False)} | {p.usd_per_1k:.4f} |"
        )
    return "\n".join(rows)


def _opt(value: float | None, pct: bool = True) -> str:
    if value is None:
        return "n/a"
    return f"{value:.1%}" if pct else f"{value:.2f}"


def _rate(value: float | None) -> str:
    return "not reached" if value is None else f"{value:.1%}"


def _pp(delta: float) -> str:
    return f"{delta * 100:+.1f} pp"
