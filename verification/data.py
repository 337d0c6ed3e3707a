"""Labelled examples for training and benchmarking the verifier, generated from public data.

Correct answers are gold solutions; wrong ones are made by perturbing them the way small models
go wrong. Every perturbed math solution is re-executed, so later steps stay consistent with an
injected error (as a model's would), and a perturbation that leaves the final answer right is
dropped rather than mislabelled. Splits are by source item (a hash of its id), so no question
appears in two splits, and every random choice comes from a seeded generator.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slmflow.core.records import Evidence, VerifyRequest
from verification import math as vm
from verification import text as tx
from verification.paths import DEFAULT_DATA

Split = str  # "train" | "calib" | "dev"


@dataclass
class Example:
    request: VerifyRequest
    label: int  # 1 = correct
    group: str  # source item id: examples of one item share a split
    perturbation: str  # "gold" for unperturbed positives; "history" for escalation labels
    weight: float = 1.0  # sample weight in training and calibration (history labels count more)

    @property
    def split(self) -> Split:
        return split_of(self.group)


def split_of(group: str) -> Split:
    h = int(hashlib.sha256(group.encode()).hexdigest()[:8], 16) % 100
    return "train" if h < 70 else "calib" if h < 85 else "dev"


def generate(data_dir: Path = DEFAULT_DATA, seed: int = 0, limit: int | None = None) -> list[Example]:
    """Every example from every source present under `data_dir`; missing sources are skipped."""
    out: list[Example] = []
    gsm = data_dir / "gsm8k" / "train.jsonl"
    if gsm.exists():
        out += list(math_examples(_jsonl(gsm, limit), seed))
    if (data_dir / "bfcl_v4").exists():
        out += list(tool_examples(data_dir / "bfcl_v4", seed, limit))
    out += list(grounding_examples(data_dir, seed, limit))
    return out


def _jsonl(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return rows[:limit] if limit else rows


# ---------------------------------------------------------------- math


@dataclass
class _Line:
    words: str  # text before the equation
    expr: str | None  # calculator expression, None for a prose line
    result: float | None
    rest: str  # text after the result
    shown: bool = True  # the solution wrote the expression out, not only in the annotation


_ANNOTATED = re.compile(
    r"^(?P<words>.*?)(?P<vis>[\d$.,()\s+\-*/x×%]*=\s*\$?)?<<(?P<expr>[^<>=]+)=(?P<res>[^<>]+)>>"
    r"(?P<resvis>-?[\d.,]+)?(?P<rest>.*)$"
)
_MATH_PERTURBATIONS = (
    "arith",
    "arith_local",
    "wrong_op",
    "wrong_number",
    "swap_number",
    "stop_early",
    "drop_term",
    "wrong_final",
    "copy_final",
    "truncate",
    "no_result",
)


def math_examples(rows: list[dict[str, Any]], seed: int) -> Iterator[Example]:
    for i, row in enumerate(rows):
        rng = random.Random(f"{seed}:math:{i}")
        lines, final = _parse_solution(row["answer"])
        if lines is None:
            continue
        group = f"gsm8k:{i}"
        # Styles beyond GSM8K's own: larger models write paragraphs and skip easy expressions.
        style = rng.choice(("annotated", "inline", "paragraph", "mental"))
        ending = rng.choice(("####", "answer_is", "a_colon", "boxed", "plain"))
        yield _math_example(row["question"], _render(lines, final, style, ending, rng), 1, group, "gold")
        for name in rng.sample(_MATH_PERTURBATIONS, 3):
            got = _perturb_math(name, lines, final, style, ending, rng)
            if got is None:
                continue
            new_lines, new_final, text = got
            if text is None:
                text = _render(new_lines, new_final, style, ending, rng)
            yield _math_example(row["question"], text, 0, group, name)


def _math_example(question: str, text: str, label: int, group: str, name: str) -> Example:
    return Example(
        VerifyRequest(kind="math", source=question, question=question, text=text, output=text), label, group, name
    )


def _parse_solution(answer: str) -> tuple[list[_Line] | None, float | None]:
    body, _, final_raw = answer.rpartition("####")
    final = tx.parse_number(final_raw)
    if final is None:
        return None, None
    lines = []
    for raw in body.strip().splitlines():
        m = _ANNOTATED.match(raw)
        if m and raw.count("<<") == 1:
            result = tx.parse_number(m["res"])
            value = vm.evaluate(vm.normalise_expression(m["expr"]))
            if result is None or value is None or not vm.close_enough(value, result):
                return None, None  # a gold solution with a broken step teaches nothing
            vis = m["vis"] or ""
            words = m["words"].rstrip() + ("$" if "$" in vis else "")
            lines.append(
                _Line(
                    words,
                    vm.normalise_expression(m["expr"]).replace(" ", ""),
                    result,
                    m["rest"],
                    shown=bool(re.search(r"\d", vis)),
                )
            )
        else:
            lines.append(_Line(raw, None, None, ""))
    if not any(ln.expr for ln in lines):
        return None, None
    return lines, final


def _render(lines: list[_Line], final: float | None, style: str, ending: str, rng: random.Random) -> str:
    out = []
    for ln in lines:
        if ln.expr is None:
            out.append(ln.words)
            continue
        res = _fmt(ln.result)
        shown = ln.expr.replace("*", rng.choice((" * ", " x ", " × ", "*"))).replace("+", " + ")
        dollar = "$" if ln.words.endswith("$") else ""
        words = (ln.words[:-1] if dollar else ln.words).rstrip()
        words = f"{words} " if words and not words.endswith("(") else words
        if style == "mental" and rng.random() < 0.4:
            out.append(f"{words}{dollar}{res}{ln.rest}")  # worked out in the head: only the result
        elif style == "annotated" and not ln.shown:
            out.append(f"{words}= {dollar}<<{ln.expr}={res}>>{res}{ln.rest}")
        elif style == "annotated":
            out.append(f"{words}{shown} = {dollar}<<{ln.expr}={res}>>{res}{ln.rest}")
        else:
            out.append(f"{words}{shown} = {dollar}{res}{ln.rest}")
    if style == "paragraph":
        out = [" ".join(ln if ln.rstrip().endswith((".", "!", "?", ":")) else f"{ln.rstrip()}." for ln in out)]
    if final is not None:
        f = _fmt(final)
        out.append(
            {
                "####": f"#### {f}",
                "answer_is": f"The answer is {f}.",
                "a_colon": f"A: {f}",
                "boxed": f"The final answer is \\boxed{{{f}}}.",
                "plain": f"So the final result is {f}.",
            }[ending]
        )
    return "\n".join(out)


def _perturb_math(
    name: str, lines: list[_Line], final: float, style: str, ending: str, rng: random.Random
) -> tuple[list[_Line], float | None, str | None] | None:
    """(lines, final, text or None to render); None when the perturbation does not apply or would
    leave the final answer right."""
    steps = [i for i, ln in enumerate(lines) if ln.expr]
    if name == "truncate":
        text = _render(lines, final, style, ending, rng)
        cut = rng.randint(len(text) // 4, max(len(text) // 4 + 1, len(text) - len(_fmt(final)) - 6))
        return lines, None, text[:cut]
    if name == "no_result":
        kept = lines[: steps[-1]] if len(steps) > 1 else lines[:1]
        kept = [
            *kept,
            _Line(
                rng.choice(
                    (
                        "Now we add these together to get the total.",
                        "We can use this to find the answer.",
                        "Putting it together gives the result.",
                    )
                ),
                None,
                None,
                "",
            ),
        ]
        return kept, None, _render(kept, None, style, ending, rng)
    if name == "wrong_final":
        results = {abs(ln.result) for ln in lines if ln.result is not None}
        wrong = _nearby(final, rng, avoid=results)
        return lines, wrong, None
    if name == "copy_final":
        others = [ln.result for ln in lines if ln.result is not None and not tx.same_number(ln.result, final)]
        return (lines, rng.choice(others), None) if others else None
    if name == "stop_early":
        if len(steps) < 2:
            return None
        kept = lines[: steps[-1]]
        new_final = kept[steps[-2]].result
        return (kept, new_final, None) if not tx.same_number(new_final, final) else None
    i = rng.choice(steps)
    expr = lines[i].expr
    new_expr, forced = expr, None
    if name in ("arith", "arith_local"):
        forced = _nearby(lines[i].result, rng, avoid={abs(lines[i].result)})
    elif name == "wrong_op":
        ops = [k for k, c in enumerate(expr) if c in "+-*/" and k > 0 and expr[k - 1] not in "+-*/(e"]
        if not ops:
            return None
        k = rng.choice(ops)
        swap = {"+": "-*", "-": "+/", "*": "/+", "/": "*-"}[expr[k]]
        new_expr = expr[:k] + rng.choice(swap) + expr[k + 1 :]
    elif name in ("wrong_number", "swap_number"):
        nums = list(re.finditer(r"\d+(?:\.\d+)?", expr))
        if not nums:
            return None
        n = rng.choice(nums)
        value = float(n.group())
        if name == "wrong_number":
            new = _nearby(value, rng, avoid={value})
        else:
            pool = [
                v
                for v in {abs(x) for x in tx.number_values(" ".join(ln.words for ln in lines))}
                | {abs(ln.result) for ln in lines[:i] if ln.result is not None}
                if not tx.same_number(v, value)
            ]
            if not pool:
                return None
            new = rng.choice(sorted(pool))
        new_expr = expr[: n.start()] + _fmt(new) + expr[n.end() :]
    elif name == "drop_term":
        terms = list(re.finditer(r"[+-]\d+(?:\.\d+)?(?=[+-]|$)", expr))
        if not terms:
            return None
        t = rng.choice(terms)
        new_expr = expr[: t.start()] + expr[t.end() :]
    new_lines, new_final = _reexecute(lines, i, new_expr, forced, final, propagate=name != "arith_local")
    if new_lines is None or new_final is None or tx.same_number(new_final, final, 1e-6):
        return None
    return new_lines, new_final, None


def _reexecute(
    lines: list[_Line], i: int, new_expr: str, forced: float | None, final: float, propagate: bool
) -> tuple[list[_Line] | None, float | None]:
    """Apply a change at line i and carry its new value through every later step that used it."""
    value = forced if forced is not None else vm.evaluate(new_expr)
    if value is None or abs(value) > 1e12:
        return None, None
    value = round(value, 4)
    changed = {lines[i].result: value}
    out = list(lines[:i]) + [_Line(lines[i].words, new_expr, value, lines[i].rest)]
    for ln in lines[i + 1 :]:
        if ln.expr is None or not propagate:
            out.append(ln)
            continue
        expr = ln.expr
        for old, new in changed.items():
            expr = re.sub(rf"(?<![\d.]){re.escape(_fmt(old))}(?![\d.])", _fmt(new), expr)
        if expr == ln.expr:
            out.append(ln)
            continue
        v = vm.evaluate(expr)
        if v is None:
            return None, None
        v = round(v, 4)
        changed[ln.result] = v
        out.append(_Line(_swap_numbers(ln.words, changed), expr, v, _swap_numbers(ln.rest, changed)))
    new_final = next((new for old, new in changed.items() if tx.same_number(old, final, 1e-6)), final)
    if not propagate and tx.same_number(lines[i].result, final, 1e-6):
        new_final = value
    return out, new_final


def _swap_numbers(text: str, changed: dict[float, float]) -> str:
    for old, new in changed.items():
        text = re.sub(rf"(?<![\d.,]){re.escape(_fmt(old))}(?![\d.])", _fmt(new), text)
    return text


def _nearby(value: float, rng: random.Random, avoid: set[float]) -> float:
    for _ in range(20):
        candidate = rng.choice(
            (
                value + rng.choice((-1, 1)) * rng.choice((1, 2, 3, 5, 10)),
                value * rng.choice((2, 10, 0.5)),
                value + rng.randint(1, 9) * 10,
            )
        )
        candidate = round(candidate, 2)
        if abs(candidate) not in avoid and candidate != value:
            return candidate
    return value + 7


def _fmt(value: float) -> str:
    return f"{value:.4f}".rstrip("0").rstrip(".") if not float(value).is_integer() else str(int(value))


# ---------------------------------------------------------------- tool calls


_BFCL_CATEGORIES = ("simple_python", "multiple", "parallel", "parallel_multiple")
_TOOL_PERTURBATIONS = (
    "wrong_function",
    "missing_required",
    "unknown_param",
    "wrong_type",
    "wrong_value",
    "drop_call",
    "abstain",
)
_DECLINES = (
    "None of the available functions can answer this question.",
    "I cannot help with that using the provided tools.",
    "[]",
    "The given functions are not relevant to this request.",
)


def tool_examples(bfcl_dir: Path, seed: int, limit: int | None = None) -> Iterator[Example]:
    for category in _BFCL_CATEGORIES:
        answers = {
            a["id"]: a["ground_truth"] for a in _jsonl(bfcl_dir / "possible_answer" / f"BFCL_v4_{category}.json")
        }
        for item in _jsonl(bfcl_dir / f"BFCL_v4_{category}.json", limit):
            rng = random.Random(f"{seed}:tool:{item['id']}")
            truth = answers.get(item["id"])
            question = _bfcl_question(item)
            if truth is None or question is None:
                continue
            gold = [
                {"name": name, "arguments": _pick_values(args, rng)} for call in truth for name, args in call.items()
            ]
            fmt = rng.choice(("json", "openai", "python"))
            yield _tool_example(item, question, _render_calls(gold, fmt), 1, "gold")
            for name in rng.sample(_TOOL_PERTURBATIONS, 4):
                calls = _perturb_calls(name, gold, item["function"], question, rng)
                if calls is None:
                    continue
                label = int(calls != "abstain" and bfcl_match(calls, truth, item["function"]))
                text = rng.choice(_DECLINES) if calls == "abstain" else _render_calls(calls, fmt)
                yield _tool_example(item, question, text, label, name)
    for item in _jsonl(bfcl_dir / "BFCL_v4_irrelevance.json", limit):
        rng = random.Random(f"{seed}:tool:{item['id']}")
        question = _bfcl_question(item)
        if question is None:
            continue
        yield _tool_example(item, question, rng.choice(_DECLINES), 1, "irrelevance_decline")
        call = _invent_call(item["function"][0], question, rng)
        yield _tool_example(
            item, question, _render_calls([call], rng.choice(("json", "openai", "python"))), 0, "irrelevance_call"
        )


def _bfcl_question(item: dict[str, Any]) -> str | None:
    turns = item.get("question") or []
    if len(turns) != 1:
        return None
    users = [m["content"] for m in turns[0] if m.get("role") == "user"]
    return users[-1] if users else None


def _tool_example(item: dict[str, Any], question: str, text: str, label: int, name: str) -> Example:
    return Example(
        VerifyRequest(
            kind="tool_call", source=question, question=question, text=text, output=None, tools=item["function"]
        ),
        label,
        f"bfcl:{item['id']}",
        name,
    )


def _pick_values(args: dict[str, list[Any]], rng: random.Random) -> dict[str, Any]:
    out = {}
    for k, allowed in args.items():
        options = [v for v in allowed if v != ""]
        if not options or ("" in allowed and rng.random() < 0.5):
            continue
        out[k] = options[0]
    return out


def _render_calls(calls: list[dict[str, Any]], fmt: str) -> str:
    if fmt == "openai":
        return json.dumps(
            {
                "tool_calls": [
                    {"type": "function", "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])}}
                    for c in calls
                ]
            }
        )
    if fmt == "python":
        return (
            "["
            + ", ".join(
                f"{c['name']}(" + ", ".join(f"{k}={v!r}" for k, v in c["arguments"].items()) + ")" for c in calls
            )
            + "]"
        )
    return json.dumps(calls if len(calls) > 1 else calls[0])


def _perturb_calls(
    name: str, gold: list[dict[str, Any]], functions: list[dict[str, Any]], question: str, rng: random.Random
) -> list[dict[str, Any]] | str | None:
    if name == "abstain":
        return "abstain"
    calls = json.loads(json.dumps(gold))
    c = rng.choice(calls)
    spec = next((f for f in functions if f["name"] == c["name"]), None)
    props = (spec or {}).get("parameters", {}).get("properties", {})
    required = (spec or {}).get("parameters", {}).get("required", [])
    if name == "wrong_function":
        others = [f["name"] for f in functions if f["name"] != c["name"]]
        c["name"] = rng.choice(others) if others and rng.random() < 0.5 else _mangle(c["name"], rng)
    elif name == "missing_required":
        present = [r for r in required if r in c["arguments"]]
        if not present:
            return None
        del c["arguments"][rng.choice(present)]
    elif name == "unknown_param":
        if not c["arguments"]:
            return None
        k = rng.choice(sorted(c["arguments"]))
        new_key = rng.choice(
            (f"{k}_value", k.rstrip("s") + "s" if not k.endswith("s") else k[:-1], k.replace("_", ""), "options")
        )
        if new_key in props or new_key == k:
            return None
        c["arguments"][new_key] = c["arguments"].pop(k)
    elif name == "wrong_type":
        if not c["arguments"]:
            return None
        k = rng.choice(sorted(c["arguments"]))
        v = c["arguments"][k]
        c["arguments"][k] = (
            str(v)
            if isinstance(v, (int, float, bool))
            else ([v] if isinstance(v, str) else (v[0] if isinstance(v, list) and v else 0))
        )
    elif name == "wrong_value":
        if not c["arguments"]:
            return None
        k = rng.choice(sorted(c["arguments"]))
        v = c["arguments"][k]
        if isinstance(v, bool):
            c["arguments"][k] = not v
        elif isinstance(v, (int, float)):
            new = _nearby(float(v), rng, avoid={float(v)})
            c["arguments"][k] = int(new) if isinstance(v, int) and float(new).is_integer() else new
        elif isinstance(v, str):
            enum = props.get(k, {}).get("enum") or []
            words = [w for w in re.findall(r"[A-Za-z]{4,}", question) if w.lower() not in v.lower()]
            pool = [e for e in enum if e != v] or words
            if not pool:
                return None
            c["arguments"][k] = rng.choice(pool)
        else:
            return None
    elif name == "drop_call":
        if len(calls) < 2:
            return None
        calls.remove(c)
    return calls


def _mangle(name: str, rng: random.Random) -> str:
    head, _, tail = name.rpartition(".")
    return rng.choice((tail if head else f"get_{name}", name.replace("_", ""), f"{name}_v2"))


def _invent_call(function: dict[str, Any], question: str, rng: random.Random) -> dict[str, Any]:
    """The call a model makes when it forces the one offered tool onto an unrelated request."""
    params = function.get("parameters", {})
    numbers = tx.number_values(question) or [float(rng.randint(1, 20))]
    words = re.findall(r"[A-Za-z]{4,}", question) or ["value"]
    args = {}
    for k in params.get("required", []):
        t = str(params.get("properties", {}).get(k, {}).get("type", "string"))
        enum = params.get("properties", {}).get(k, {}).get("enum")
        if enum:
            args[k] = rng.choice(enum)
        elif t in ("integer", "int"):
            args[k] = int(rng.choice(numbers))
        elif t in ("float", "number"):
            args[k] = float(rng.choice(numbers))
        elif t == "boolean":
            args[k] = True
        elif t in ("array", "list", "tuple"):
            args[k] = [int(x) for x in numbers[:3]]
        elif t in ("dict", "object"):
            args[k] = {}
        else:
            args[k] = rng.choice(words)
    return {"name": function["name"], "arguments": args}


def bfcl_match(
    calls: list[dict[str, Any]], truth: list[dict[str, dict[str, list[Any]]]], functions: list[dict[str, Any]]
) -> bool:
    """BFCL's AST rule: same number of calls, each matching one ground-truth call (any order):
    same function, every given value in the allowed list, every param without "" given."""
    if len(calls) != len(truth):
        return False
    remaining = list(truth)
    for call in calls:
        hit = next((t for t in remaining if _call_matches(call, t)), None)
        if hit is None:
            return False
        remaining.remove(hit)
    return True


def _call_matches(call: dict[str, Any], truth: dict[str, dict[str, list[Any]]]) -> bool:
    ((name, allowed),) = truth.items()
    if call["name"] != name:
        return False
    args = call["arguments"]
    if set(args) - set(allowed):
        return False
    for k, options in allowed.items():
        if k not in args:
            if "" not in options:
                return False
        elif not any(_same_value(args[k], o) for o in options):
            return False
    return True


def _same_value(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return tx.same_number(float(a), float(b))
    if isinstance(a, str) and isinstance(b, str):
        return a.strip().lower() == b.strip().lower()
    return a == b


# ---------------------------------------------------------------- grounded answers


_GROUND_PERTURBATIONS = ("other_doc", "number", "entity", "negation", "antonym")


def grounding_examples(data_dir: Path, seed: int, limit: int | None = None) -> Iterator[Example]:
    for group, question, passages, claims, foreign in _grounding_sources(data_dir, limit):
        rng = random.Random(f"{seed}:ground:{group}")
        evidence = [
            Evidence(chunk_id=f"{group}#{k}", doc_id=group, text=p, score=1.0, collection="dev")
            for k, p in enumerate(passages, 1)
        ]
        claim_pool = [c for c in claims if len(c.split()) >= 5]
        if not claim_pool:
            continue
        for _ in range(2):
            picked = rng.sample(claim_pool, min(len(claim_pool), rng.choice((1, 2))))
            cites = rng.random() < 0.5
            positive = " ".join(_cite(_trim(c, rng), len(evidence), rng, cites) for c in picked)
            yield _answer_example(question, positive, evidence, 1, group, "gold")
            name = rng.choice(_GROUND_PERTURBATIONS)
            bad = _perturb_claim(name, picked[-1], foreign, rng)
            if bad is None:
                continue
            text = " ".join(
                [
                    *(_cite(_trim(c, rng), len(evidence), rng, cites) for c in picked[:-1]),
                    _cite(bad, len(evidence), rng, cites),
                ]
            )
            yield _answer_example(question, text, evidence, 0, group, name)


def _grounding_sources(data_dir: Path, limit: int | None):
    """(group, question, evidence passages, supported claims, unrelated-but-nearby sentences)."""
    pubmed = data_dir / "pubmedqa" / "pqal_dev.json"
    if pubmed.exists():
        records = list(json.loads(pubmed.read_text()).items())[:limit]
        for n, (pid, r) in enumerate(records):
            neighbour = records[(n + 1) % len(records)][1]
            # Only the abstract's own sentences: its conclusion (LONG_ANSWER) adds recommendations
            # the contexts do not support, which would teach the model to accept the unsupported.
            claims = [s for c in r["CONTEXTS"] for s in tx.sentences(c)]
            foreign = [s for c in neighbour["CONTEXTS"] for s in tx.sentences(c)]
            yield f"pubmedqa:{pid}", r["QUESTION"], r["CONTEXTS"], claims, foreign
    hotpot = data_dir / "hotpotqa_sample" / "hotpot_dev_distractor_first53.json"
    if hotpot.exists():
        for r in json.loads(hotpot.read_text())[:limit]:
            gold_titles = {t for t, _ in r["supporting_facts"]}
            gold = [(t, s) for t, s in r["context"] if t in gold_titles]
            other = [(t, s) for t, s in r["context"] if t not in gold_titles]
            passages = ["".join(s).strip() for _, s in gold]
            claims = [x.strip() for _, s in gold for x in s if x.strip()]
            foreign = [x.strip() for _, s in other for x in s if x.strip()]
            yield f"hotpotqa:{r['_id']}", r["question"], passages, claims, foreign


def _answer_example(question: str, text: str, evidence: list[Evidence], label: int, group: str, name: str) -> Example:
    source = "Context:\n" + "\n".join(f"[{k}] {e.text}" for k, e in enumerate(evidence, 1)) + f"\n\n{question}"
    return Example(
        VerifyRequest(kind="answer", source=source, question=question, text=text, output=text, evidence=evidence),
        label,
        group,
        name,
    )


def _trim(sentence: str, rng: random.Random) -> str:
    """Models shorten what they copy: sometimes drop a leading clause."""
    head, sep, tail = sentence.partition(", ")
    if sep and len(tail.split()) >= 6 and rng.random() < 0.3:
        return tail[0].upper() + tail[1:]
    return sentence


def _cite(sentence: str, n: int, rng: random.Random, cites: bool) -> str:
    if not cites:
        return sentence
    return re.sub(r"([.!?]?)$", lambda m: f" [{rng.randint(1, n)}]{m.group(1) or '.'}", sentence, count=1)


def _perturb_claim(name: str, sentence: str, foreign: list[str], rng: random.Random) -> str | None:
    if name == "other_doc":
        pool = [s for s in foreign if len(s.split()) >= 5]
        return rng.choice(pool) if pool else None
    if name == "number":
        nums = list(re.finditer(r"\d+(?:\.\d+)?", sentence))
        if not nums:
            return None
        m = rng.choice(nums)
        value = float(m.group())
        return sentence[: m.start()] + _fmt(_nearby(value, rng, avoid={value})) + sentence[m.end() :]
    if name == "entity":
        mine = tx.name_spans(sentence)
        theirs = [n for s in foreign for n in tx.name_spans(s) if n not in sentence]
        if not mine or not theirs:
            return None
        return sentence.replace(rng.choice(mine), rng.choice(theirs), 1)
    if name == "negation":
        swapped = re.sub(
            r"\b(is|was|are|were|did|does|can|could|has|had|have)\b", lambda m: f"{m.group(1)} not", sentence, count=1
        )
        return swapped if swapped != sentence else None
    words = [w for w in re.findall(r"[a-z]+", sentence) if w in tx.ANTONYMS]
    if not words:
        return None
    w = rng.choice(words)
    return re.sub(rf"\b{w}\b", tx.ANTONYMS[w], sentence, count=1)
