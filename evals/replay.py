"""Replay: verify every recorded small answer, grade both answers, and summarise the routing.

Model-free: the answers come from a replay file, so this runs anywhere, repeatably, in seconds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ValidationError
from rich.console import Console

from evals.adapters.base import Adapter, Item
from evals.cache import ResultCache, result_key
from evals.errors import EvalError
from evals.metrics import (
    CurvePoint,
    CurveSummary,
    Policy,
    Row,
    frontier_only,
    small_only,
    summarize_curve,
    threshold_curve,
    verified_cascade,
)
from evals.progress import progress_bar
from evals.records import ReplayRecord
from evals.results import ItemResult, Judged, VerifierState
from evals.verify import Support, VerifierLike, fingerprint, probe_support
from slmflow.core.prices import UnpricedModelError
from slmflow.core.settings import Settings

PROBE_ITEMS = 3


@dataclass(frozen=True)
class Evaluated:
    record: ReplayRecord
    result: ItemResult


class VerifierQuality(BaseModel):
    """How well the verifier's accept decision tracks the small answer's correctness."""

    accept_rate: float
    precision: float | None  # accepted answers that are correct
    recall: float | None  # correct answers that were accepted
    false_accept_rate: float | None  # wrong answers that were accepted
    errors: int  # items on which the verifier raised (counted as escalated)
    top_reasons: list[tuple[str, int]]


class EvalSummary(BaseModel):
    dataset: str
    verify_kind: str
    n_items: int
    synthetic: bool
    small_models: list[str]
    frontier_models: list[str]
    verifier_supported: bool
    verifier_note: str
    small: Policy
    frontier: Policy
    cascade: Policy | None
    savings_vs_frontier: float | None  # 1 - cascade cost / frontier-only cost
    curve: list[CurvePoint]
    curve_summary: CurveSummary | None
    verifier_quality: VerifierQuality | None
    extra: dict[str, dict[str, float]]  # dataset-specific figures per policy (macro-F1 ...)
    score_name: str | None
    computed: int
    cached: int
    warnings: list[str]


def resolve_items(
    adapter: Adapter, records: Sequence[ReplayRecord], dataset_items: dict[str, Item] | None
) -> list[Item]:
    items = []
    for record in records:
        if record.kind != adapter.verify_kind:
            raise EvalError(
                f"item {record.id!r} has kind {record.kind!r}; {adapter.name} records have kind {adapter.verify_kind!r}"
            )
        if record.dataset not in (None, adapter.name):
            raise EvalError(f"item {record.id!r} belongs to dataset {record.dataset!r}, not {adapter.name!r}")
        known = dataset_items.get(record.id) if dataset_items else None
        items.append(adapter.item_from_record(record, known))
    return items


def evaluate(
    adapter: Adapter,
    records: Sequence[ReplayRecord],
    items: Sequence[Item],
    verifier: VerifierLike,
    cache: ResultCache,
    console: Console | None = None,
) -> tuple[list[Evaluated], Support, int]:
    """Judge every record, reusing cached results. Returns the results, whether the verifier
    supports the kind, and how many results were cached."""
    prompts = [r.prompt or adapter.prompt(i) for r, i in zip(records, items, strict=True)]
    support = _probe(adapter, records, items, prompts, verifier)
    verifier_fp = fingerprint(verifier)
    evaluated, cached = [], 0
    with progress_bar(console, len(records), f"{adapter.name}: verify + grade") as advance:
        for record, item, prompt in zip(records, items, prompts, strict=True):
            key = result_key(
                adapter.name,
                record.id,
                [
                    record.small.answer,
                    record.small.finish_reason,
                    record.small.confidence,
                    record.frontier.answer,
                    item.gold,
                    prompt,
                    item.extra,
                    support.supported,
                    verifier_fp,
                ],
            )
            result = cache.get(key)
            if result is None:
                result = _judge(adapter, record, item, prompt, key, verifier, support)
                cache.add(result)
            else:
                cached += 1
            evaluated.append(Evaluated(record, result))
            advance(1)
    return evaluated, support, cached


def _probe(
    adapter: Adapter,
    records: Sequence[ReplayRecord],
    items: Sequence[Item],
    prompts: Sequence[str],
    verifier: VerifierLike,
) -> Support:
    """Support for the dataset's kind, probed on the first few items so that one odd item
    cannot mark a whole kind unsupported."""
    refusals: list[Support] = []
    for i in range(min(PROBE_ITEMS, len(records))):
        try:
            request = adapter.verify_request(items[i], prompts[i], records[i].small)
        except ValidationError as exc:  # e.g. a kind VerifyRequest does not know yet
            support = Support(False, f"cannot build a verifier request: {exc.errors()[0]['msg']}")
        else:
            support = probe_support(verifier, request)
        if support.supported:
            return support
        refusals.append(support)
    return refusals[0] if refusals else Support(False, "no item to probe")


def _judge(
    adapter: Adapter, record: ReplayRecord, item: Item, prompt: str, key: str, verifier: VerifierLike, support: Support
) -> ItemResult:
    state: VerifierState = "unsupported"
    accept: bool | None = None
    score: float | None = None
    reasons: list[str] = []
    if support.supported:
        try:
            verdict = verifier.verify(adapter.verify_request(item, prompt, record.small))
            state, accept, score, reasons = "ok", verdict.accept, verdict.score, verdict.reasons
        except Exception as exc:  # noqa: BLE001 - one bad item must not end a long replay
            # Counted as a rejection, as the flow would escalate a draft it could not verify.
            state, accept, score, reasons = "error", False, 0.0, [f"{type(exc).__name__}: {exc}"]
    return ItemResult(
        key=key,
        dataset=adapter.name,
        id=record.id,
        verifier=state,
        accept=accept,
        score=score,
        reasons=reasons,
        small=Judged.of(adapter.grade(record.small.answer, item)),
        frontier=Judged.of(adapter.grade(record.frontier.answer, item)),
        gold=item.gold if isinstance(item.gold, (str, int, float)) else None,
    )


def summarize(
    adapter: Adapter, evaluated: Sequence[Evaluated], support: Support, settings: Settings, cached: int = 0
) -> EvalSummary:
    warnings = _price_warnings(evaluated, settings)
    rows = [_row(e, settings) for e in evaluated]
    small, frontier = small_only(rows), frontier_only(rows)
    cascade = verified_cascade(rows) if support.supported else None
    curve = threshold_curve(rows) if support.supported else []
    results = [e.result for e in evaluated]
    extra = {
        "small": adapter.extra_metrics([(r.gold, r.small.parsed) for r in results]),
        "frontier": adapter.extra_metrics([(r.gold, r.frontier.parsed) for r in results]),
    }
    if support.supported:
        extra["cascade"] = adapter.extra_metrics(
            [(r.gold, r.small.parsed if r.accept else r.frontier.parsed) for r in results]
        )
    if not any(e.record.small.tokens_in or e.record.small.tokens_out for e in evaluated):
        warnings.append("the replay lines carry no token counts, so every cost is 0")
    return EvalSummary(
        dataset=adapter.name,
        verify_kind=adapter.verify_kind,
        n_items=len(evaluated),
        synthetic=any(e.record.synthetic for e in evaluated),
        small_models=sorted({e.record.small.model for e in evaluated}),
        frontier_models=sorted({e.record.frontier.model for e in evaluated}),
        verifier_supported=support.supported,
        verifier_note=support.reason,
        small=small,
        frontier=frontier,
        cascade=cascade,
        savings_vs_frontier=(1 - cascade.usd_per_1k / frontier.usd_per_1k if cascade and frontier.usd_per_1k else None),
        curve=curve,
        curve_summary=summarize_curve(curve) if curve else None,
        verifier_quality=_quality(results) if support.supported else None,
        extra={k: v for k, v in extra.items() if v},
        score_name=adapter.score_name,
        computed=len(evaluated) - cached,
        cached=cached,
        warnings=warnings,
    )


def _row(e: Evaluated, settings: Settings) -> Row:
    s, f, r = e.record.small, e.record.frontier, e.result
    return Row(
        small_correct=r.small.correct,
        frontier_correct=r.frontier.correct,
        small_score=r.small.score,
        frontier_score=r.frontier.score,
        small_usd=_usd(settings, s.model, s.tokens_in, s.tokens_out),
        frontier_usd=_usd(settings, f.model, f.tokens_in, f.tokens_out),
        accept=r.accept,
        score=r.score,
    )


def _quality(results: Sequence[ItemResult]) -> VerifierQuality:
    accepted = [r for r in results if r.accept]
    correct = [r for r in results if r.small.correct]
    wrong = [r for r in results if not r.small.correct]
    reasons = Counter(reason.split(":", 1)[0] for r in results if not r.accept for reason in r.reasons)
    return VerifierQuality(
        accept_rate=len(accepted) / len(results),
        precision=_ratio(sum(r.small.correct for r in accepted), len(accepted)),
        recall=_ratio(sum(bool(r.accept) for r in correct), len(correct)),
        false_accept_rate=_ratio(sum(bool(r.accept) for r in wrong), len(wrong)),
        errors=sum(r.verifier == "error" for r in results),
        top_reasons=reasons.most_common(5),
    )


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _usd(settings: Settings, model: str, tokens_in: int, tokens_out: int) -> float:
    """Tokens at the model's price; 0 for a model without one (`_price_warnings` says which)."""
    try:
        price = settings.price_for(model)
    except UnpricedModelError:
        return 0.0
    return price.usd(tokens_in, tokens_out) if price else 0.0


def _price_warnings(evaluated: Sequence[Evaluated], settings: Settings) -> list[str]:
    models = {e.record.small.model for e in evaluated} | {e.record.frontier.model for e in evaluated}
    warnings = []
    for m in sorted(models):
        try:
            if settings.price_for(m) is None:
                warnings.append(f"model {m!r} is unpriced (SLMFLOW_PRICES); its cost counts as 0")
        except UnpricedModelError:
            warnings.append(f"no price for model {m!r} in SLMFLOW_PRICES or LiteLLM's price map; its cost counts as 0")
    return warnings
