"""BFCL v4 (non-live): single-turn function calling, graded by bfcl-eval's own AST checker
(see evals/adapters/bfcl_checker.py).

Categories: simple_python, multiple, parallel, parallel_multiple (possible answers in
`possible_answer/`), and irrelevance, where the correct answer is to call nothing. The prompt
is BFCL's default prompting-mode system prompt (Python call syntax).
"""

from __future__ import annotations

import json
from itertools import zip_longest
from pathlib import Path
from typing import Any

from evals.adapters import bfcl_checker
from evals.adapters.base import Adapter, Grade, Item, read_jsonl
from evals.errors import EvalError
from slmflow.core.records import Message

CATEGORIES = ("simple_python", "multiple", "parallel", "parallel_multiple", "irrelevance")
NO_CALL = "None of the provided functions can be used for this request."

SYSTEM = (
    "You are an expert in composing functions. You are given a question and a set of possible "
    "functions. Based on the question, you will need to make one or more function/tool calls to "
    "achieve the purpose. If none of the functions can be used, point it out. If the given "
    "question lacks the parameters required by the function, also point it out.\n"
    "You should only return the function calls in your response.\n\n"
    "If you decide to invoke any of the function(s), you MUST put it in the format of "
    "[func_name1(params_name1=params_value1, params_name2=params_value2...), func_name2(params)]"
    "\nYou SHOULD NOT include any other text in the response.\n\n"
    "Here is a list of functions in JSON format that you can invoke.\n{functions}\n"
)


def category_of(item_id: str) -> str | None:
    prefix = item_id.rsplit("_", 1)[0]
    return prefix if prefix in CATEGORIES else None


class BFCL(Adapter):
    name = "bfcl"
    verify_kind = "tool_call"
    task_kind = "answer"
    files = tuple(f"bfcl_v4/BFCL_v4_{c}.json" for c in CATEGORIES) + tuple(
        f"bfcl_v4/possible_answer/BFCL_v4_{c}.json" for c in CATEGORIES if c != "irrelevance"
    )
    required_extra = ("tools",)

    def _load(self, data_dir: Path) -> list[Item]:
        bfcl_checker.load_ast_checker()  # no bfcl-eval: say so before any answer is generated
        root = data_dir / "bfcl_v4"
        per_category: list[list[Item]] = []
        for category in CATEGORIES:
            answers: dict[str, Any] = {}
            if category != "irrelevance":
                answers = {
                    row["id"]: row["ground_truth"]
                    for row in read_jsonl(root / "possible_answer" / f"BFCL_v4_{category}.json")
                }
            items = []
            for row in read_jsonl(root / f"BFCL_v4_{category}.json"):
                if category != "irrelevance" and row["id"] not in answers:
                    raise EvalError(f"bfcl: {row['id']} has no possible answer")
                turn = row["question"][0]
                items.append(
                    Item(
                        id=row["id"],
                        question="\n".join(m["content"] for m in turn if m["role"] == "user"),
                        gold=answers.get(row["id"], []),
                        extra={"tools": row["function"], "category": category, "turn": turn},
                    )
                )
            per_category.append(items)
        # Interleaved, so that `--limit N` samples every category rather than the first one.
        return [item for group in zip_longest(*per_category) for item in group if item]

    def messages(self, item: Item) -> list[Message]:
        system = SYSTEM.format(functions=json.dumps(item.extra["tools"], indent=1))
        turn = item.extra.get("turn") or [{"role": "user", "content": item.question}]
        return [Message(role="system", content=system), *(Message(role=m["role"], content=m["content"]) for m in turn)]

    def parse(self, answer: str, item: Item) -> list[dict[str, Any]] | None:
        """Calls as [{"name", "arguments"}], or None when the answer holds no call."""
        try:
            calls = bfcl_checker.decode(answer)
        except bfcl_checker.DecodeError:
            return None
        return [{"name": n, "arguments": a} for call in calls for n, a in call.items()] or None

    def grade(self, answer: str, item: Item) -> Grade:
        try:
            calls = bfcl_checker.decode(answer)
        except bfcl_checker.DecodeError:
            calls = []
        parsed = [{n: _jsonable(a)} for call in calls for n, a in call.items()]
        if self._category(item) == "irrelevance":
            correct = bfcl_checker.is_empty(calls)
        elif not calls:
            correct = False
        else:
            correct, _ = bfcl_checker.check(item.extra["tools"], calls, item.gold, self._category(item))
        return Grade(correct=correct, score=float(correct), parsed=parsed)

    def verify_extras(self, item: Item) -> dict[str, Any]:
        return {"tools": item.extra["tools"]}

    def demo_answers(self, item: Item, variant: int) -> tuple[str, str]:
        tools = item.extra["tools"]
        if self._category(item) == "irrelevance":
            return NO_CALL, f"[{tools[0]['name']}()]"
        declared = {t["name"]: t["parameters"]["properties"] for t in tools}
        # A few possible answers list parameters the function does not declare (BFCL data
        # quirks that BFCL itself marks wrong when used); a correct demo call leaves them out.
        calls = [
            (name, {k: v for k, v in _pick_args(allowed).items() if k in declared.get(name, {})})
            for answer in item.gold
            for name, allowed in answer.items()
        ]
        right = "[" + ", ".join(_render(n, a) for n, a in calls) + "]"
        name, args = calls[0]
        if variant % 3 == 0 or not args:
            wrong_calls = [(name + "_v2", args), *calls[1:]]
        else:
            param = next(iter(args))
            wrong_calls = [(name, {**args, param: _perturb(args[param])}), *calls[1:]]
        return right, "[" + ", ".join(_render(n, a) for n, a in wrong_calls) + "]"

    def _category(self, item: Item) -> str:
        category = item.extra.get("category") or category_of(item.id)
        if category is None:
            raise EvalError(f"bfcl item {item.id!r}: unknown category (ids start with one of {', '.join(CATEGORIES)})")
        return category

    def _gold_optional(self, item_id: str, extra: dict[str, Any]) -> bool:
        return (extra.get("category") or category_of(item_id)) == "irrelevance"


def _pick_args(allowed: dict[str, list[Any]]) -> dict[str, Any]:
    """One concrete call from a possible answer: the first allowed value of each parameter,
    leaving out the optional ones that may be omitted."""
    return {name: _pick(values) for name, values in allowed.items() if any(v != "" for v in values)}


def _pick(values: list[Any]) -> Any:
    value = next(v for v in values if v != "")
    if isinstance(value, dict):  # a dict's allowed values are listed per key
        return _pick_args(value)
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return [_pick_args(v) for v in value]
    return value


def _render(name: str, args: dict[str, Any]) -> str:
    return f"{name}(" + ", ".join(f"{k}={v!r}" for k, v in args.items()) + ")"


def _perturb(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 7
    if isinstance(value, str):
        return value + " extra"
    if isinstance(value, list):
        return value[:-1] if value else ["x"]
    return "wrong"


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=repr))
