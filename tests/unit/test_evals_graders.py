"""Each dataset's grading rule on known cases, and BFCL's AST rules one by one, as bfcl-eval's
own checker applies them (bfcl-eval is installed by `make install`)."""

from __future__ import annotations

import sys
from decimal import Decimal

import pytest

from evals.adapters import bfcl_checker, get_adapter
from evals.adapters.base import Item
from evals.adapters.gsm8k import final_number, gold_number
from evals.adapters.hotpotqa import answer_span, exact_match, token_f1
from evals.adapters.pubmedqa import macro_f1, read_label
from evals.errors import EvalError
from tests.support.data import shared_data

# ---------------------------------------------------------------- GSM8K


@pytest.mark.parametrize(
    ("answer", "number"),
    [
        ("She sold 48 + 24 = 72 clips.\n#### 72", "72"),
        ("#### 1,234", "1234"),
        ("Step 3 gives 40.\nA: 18", "18"),
        ("So 5 + 7 = 12. The answer is $1,200.50.", "1200.50"),
        ("First 3 then 4, the total is 19", "19"),
        ("\\boxed{-7}", "-7"),
        ("The answer is 10. Checking: 2 * 5 = 10, then 99 bottles", "10"),  # marker beats last number
        ("#### 3\nsome follow-up mentions 8", "3"),
        ("no digits at all", None),
    ],
)
def test_gsm8k_reads_the_final_number(answer: str, number: str | None) -> None:
    assert final_number(answer) == (Decimal(number) if number else None)


def test_gsm8k_grades_exact_match_after_stripping_commas() -> None:
    gsm = get_adapter("gsm8k")
    item = Item(id="g", question="q", gold="2 * 600 = <<2*600=1200>>1200\n#### 1,200")
    assert gold_number(item.gold) == Decimal(1200)
    assert gsm.grade("The answer is 1200.", item).correct
    assert gsm.grade("#### 1,200.00", item).correct
    assert not gsm.grade("#### 1201", item).correct
    assert not gsm.grade("I don't know", item).correct


# ---------------------------------------------------------------- BFCL

AREA = {
    "name": "geometry.area",
    "parameters": {
        "type": "dict",
        "required": ["base", "height"],
        "properties": {
            "base": {"type": "integer"},
            "height": {"type": "float"},
            "unit": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
    },
}
AREA_GOLD = [{"geometry.area": {"base": [10], "height": [5.0], "unit": ["cm", ""], "tags": [["a b"], ""]}}]


def _check(answer: str, gold=AREA_GOLD, category: str = "simple_python", tools=(AREA,)) -> bool:
    return bfcl_checker.check(list(tools), bfcl_checker.decode(answer), gold, category)[0]


@pytest.mark.parametrize(
    ("answer", "ok"),
    [
        ("[geometry.area(base=10, height=5.0)]", True),
        ("geometry.area(base=10, height=5)", True),  # int for float, brackets optional
        ("[geometry.area(base=10, height=5.0, unit='CM')]", True),  # strings: case-insensitive
        ("[geometry.area(base=10, height=5.0, tags=['A-B'])]", True),  # list items standardised
        ('[{"name": "geometry.area", "arguments": {"base": 10, "height": 5.0}}]', True),
        ("[geometry.area(base=11, height=5.0)]", False),  # value outside the allowed list
        ("[geometry.area(base=10.0, height=5.0)]", False),  # float for integer
        ("[geometry.area(base=10)]", False),  # required parameter missing
        ("[geometry.area(base=10, height=5.0, colour='red')]", False),  # unexpected parameter
        ("[geometry.area(base=10, height=5.0, unit='m')]", False),
        ("[geometry.volume(base=10, height=5.0)]", False),  # wrong function
        # `_` for `.` is accepted only from function-calling models; ours answer in prompting mode.
        ("[geometry_area(base=10, height=5.0)]", False),
        ("[geometry.area(base=10, height=5.0), geometry.area(base=10, height=5.0)]", False),
    ],
)
def test_bfcl_simple_ast_rules(answer: str, ok: bool) -> None:
    assert _check(answer) is ok


def test_bfcl_is_graded_by_bfcl_evals_own_checker(monkeypatch) -> None:
    checker = bfcl_checker.load_ast_checker()
    assert checker.__module__ == "bfcl_eval.eval_checker.ast_eval.ast_checker"
    # The stand-in for bfcl-eval's model registry is gone once the checker is imported, and
    # nothing heavier came in (eval_config would create folders inside site-packages).
    assert "bfcl_eval.constants.model_config" not in sys.modules
    assert "bfcl_eval.constants.eval_config" not in sys.modules
    seen = []
    monkeypatch.setattr(bfcl_checker, "load_ast_checker", lambda: lambda *args: seen.append(args) or checker(*args))
    item = Item(
        id="simple_python_0", question="q", gold=AREA_GOLD, extra={"tools": [AREA], "category": "simple_python"}
    )
    assert get_adapter("bfcl").grade("[geometry.area(base=10, height=5.0)]", item).correct
    assert len(seen) == 1


def test_bfcl_without_bfcl_eval_tells_how_to_install_it(monkeypatch) -> None:
    bfcl_checker.load_ast_checker.cache_clear()
    for name in [m for m in sys.modules if m.startswith("bfcl_eval.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "bfcl_eval", None)  # makes `import bfcl_eval...` fail
    try:
        with pytest.raises(EvalError, match="make eval-extras"):
            bfcl_checker.load_ast_checker()
    finally:
        bfcl_checker.load_ast_checker.cache_clear()


def test_bfcl_optional_parameter_without_empty_marker_must_be_given() -> None:
    gold = [{"geometry.area": {"base": [10], "height": [5.0], "unit": ["cm"]}}]
    assert not _check("[geometry.area(base=10, height=5.0)]", gold)
    assert _check("[geometry.area(base=10, height=5.0, unit='cm')]", gold)


def test_bfcl_parallel_calls_match_in_any_order() -> None:
    gold = [{"geometry.area": {"base": [1], "height": [2.0]}}, {"geometry.area": {"base": [3], "height": [4.0]}}]
    both = "[geometry.area(base=3, height=4.0), geometry.area(base=1, height=2.0)]"
    assert _check(both, gold, "parallel")
    assert not _check("[geometry.area(base=3, height=4.0)]", gold, "parallel")
    assert not _check(both.replace("base=1", "base=9"), gold, "parallel")


def test_bfcl_multiple_picks_the_right_function_among_several() -> None:
    other = {"name": "other", "parameters": {"type": "dict", "required": [], "properties": {}}}
    assert _check("[geometry.area(base=10, height=5.0)]", category="multiple", tools=(other, AREA))
    assert not _check("[other()]", category="multiple", tools=(other, AREA))


def test_bfcl_irrelevance_is_correct_only_without_a_call() -> None:
    bfcl = get_adapter("bfcl")
    item = Item(id="irrelevance_0", question="q", gold=[], extra={"tools": [AREA], "category": "irrelevance"})
    assert bfcl.grade("None of the functions fit this request.", item).correct
    assert bfcl.grade("[]", item).correct
    assert not bfcl.grade("[geometry.area(base=1, height=2.0)]", item).correct


def test_bfcl_decoder_never_executes_model_output() -> None:
    calls = bfcl_checker.decode("[f(x=__import__('os').getcwd(), y=2**3, z=-1)]")
    assert calls == [{"f": {"x": "__import__('os').getcwd()", "y": 8, "z": -1}}]
    with pytest.raises(bfcl_checker.DecodeError):
        bfcl_checker.decode("Sorry, I can't do that")


# ---------------------------------------------------------------- PubMedQA


@pytest.mark.parametrize(
    ("answer", "label"),
    [
        ("yes", "yes"),
        ("Maybe.", "maybe"),
        ("No, the data do not show it.", "no"),
        ("The answer is yes", "yes"),
        ("unclear", None),
    ],
)
def test_pubmedqa_reads_the_label(answer: str, label: str | None) -> None:
    assert read_label(answer) == label


def test_pubmedqa_accuracy_and_macro_f1() -> None:
    pub = get_adapter("pubmedqa")
    item = Item(id="1", question="q", gold="no")
    assert pub.grade("No.", item).correct and not pub.grade("maybe", item).correct
    pairs = [("yes", "yes"), ("no", "yes"), ("maybe", "maybe"), ("no", "no")]
    # yes: P=1/2 R=1 F=2/3; no: P=1 R=1/2 F=2/3; maybe: F=1
    assert macro_f1(pairs, ["yes", "no", "maybe"]) == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)


# ---------------------------------------------------------------- HotpotQA


def test_hotpotqa_em_and_f1_use_the_official_normalisation() -> None:
    assert exact_match("The Chief of Protocol.", "Chief of Protocol")
    assert token_f1("Chief of Protocol", "Chief of Protocol") == 1.0
    # pred "greenwich village" vs gold "greenwich village new york city": P=1, R=2/5
    assert token_f1("Greenwich Village", "Greenwich Village, New York City") == pytest.approx(2 * 1 * 0.4 / 1.4)
    assert token_f1("yes it is", "yes") == 0.0  # yes/no earn no partial credit
    assert not exact_match("no", "yes")


def test_hotpotqa_reads_a_span_from_a_free_form_answer() -> None:
    assert answer_span("Answer: Terry Richardson [2].") == "Terry Richardson"
    assert answer_span("YG Entertainment\nBecause passage 3 says so.") == "YG Entertainment"
    hot = get_adapter("hotpotqa")
    item = Item(id="h", question="q", gold="1969 until 1974", extra={"evidence": ["t: x"]})
    grade = hot.grade("from 1969 until 1974 [1]", item)
    assert not grade.correct and 0 < grade.score < 1


# ---------------------------------------------------------------- the shared data, when present


@pytest.mark.parametrize("dataset", ["gsm8k", "bfcl", "pubmedqa", "hotpotqa"])
def test_demo_answers_grade_as_intended_on_the_real_data(dataset: str) -> None:
    adapter = get_adapter(dataset)
    items = adapter.load(shared_data(), limit=60)
    assert items
    for i, item in enumerate(items):
        right, wrong = adapter.demo_answers(item, i)
        assert adapter.grade(right, item).correct, (item.id, right)
        assert not adapter.grade(wrong, item).correct, (item.id, wrong)
