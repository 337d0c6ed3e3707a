"""The tau2 airline and retail domains as tools, and tau2's scoring rule.

The data-driven tests read the tau2 train tasks from the shared data folder and skip when it is
missing; the rest build their own inputs.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from evals.adapters import default_data_dir
from evals.errors import EvalError
from evals.tau2 import airline, retail
from evals.tau2.db import load_db, prepare_workdir, save_db, transaction, use_directory
from evals.tau2.domains import DOMAINS, domain_tools, tool_module
from evals.tau2.scoring import db_hash, missing_info, pass_hat_k, replay, score
from evals.tau2.tasks import Task, load_tasks
from evals.tau2.user import OUT_OF_SCOPE, STOP, TRANSFER, is_stop, stop_token, user_system_prompt
from tests.support.data import shared_data
from tools.registry import from_callable

DATA = default_data_dir() / "tau2"

# Gold writes that tau2's own tools refuse, on purpose or by a slip in the task. Each leaves the
# database as it was, and the rest of the trajectory still defines the expected end state:
# retail 13 first tries a refund to PayPal (not the original payment method), then to the card;
# retail 105's exchange costs more than the gift card holds, so the expected end state is the
# initial database and doing nothing passes its DB check (tau2 scores it the same way).
REFUSED_GOLD_WRITES = {("retail", "13"): ["13_4"], ("retail", "105"): ["106_0"]}
NO_OP_WRITE_TASKS = {("retail", "105")}


@pytest.fixture(scope="module")
def data_dir() -> Path:
    return shared_data("tau2", "tool_signatures.json").parent


def _use_fresh_db(domain: str, tmp_path: Path) -> Iterator[Path]:
    shared_data("tau2", "tool_signatures.json")
    prepare_workdir(domain, DATA, tmp_path)
    with use_directory(tmp_path):
        yield tmp_path


@pytest.fixture
def retail_dir(tmp_path: Path) -> Iterator[Path]:
    """A fresh copy of the retail database, which the tools use."""
    yield from _use_fresh_db("retail", tmp_path)


@pytest.fixture
def airline_dir(tmp_path: Path) -> Iterator[Path]:
    """A fresh copy of the airline database, which the tools use."""
    yield from _use_fresh_db("airline", tmp_path)


@cache
def _write_tools(domain: str) -> frozenset[str]:
    return frozenset(name for name, fn in domain_tools(domain).items() if from_callable(fn).side_effects)


def _writes(domain: str, task: Task) -> list[str]:
    """The ids of the task's gold actions that call a WRITE tool."""
    return [a.action_id for a in task.evaluation_criteria.actions if a.name in _write_tools(domain)]


# ---- tools match tau2's signatures -------------------------------------------------------------


@pytest.mark.parametrize("domain", DOMAINS)
def test_every_tau2_tool_is_a_registry_tool_with_its_signature(domain: str, data_dir: Path) -> None:
    signatures = json.loads((data_dir / "tool_signatures.json").read_text())[domain]
    tools = domain_tools(domain)
    assert sorted(tools) == sorted(s["name"] for s in signatures)
    for sig in signatures:
        t = from_callable(tools[sig["name"]])
        assert list(t.parameters.get("properties", {})) == [p["name"] for p in sig["params"]], sig["name"]
        assert t.side_effects == ("WRITE" in sig["tool_type"]), sig["name"]
        assert all(p.get("description") for p in t.parameters.get("properties", {}).values()), sig["name"]
        assert t.source == f"python:{tool_module(domain)}:{sig['name']}"


def test_schemas_are_derived_from_signatures_and_docstrings() -> None:
    order = from_callable(retail.get_order_details)
    assert order.parameters["required"] == ["order_id"]
    assert "'#'" in order.parameters["properties"]["order_id"]["description"]
    book = from_callable(airline.book_reservation)
    props = book.parameters["properties"]
    assert props["cabin"]["enum"] == ["business", "economy", "basic_economy"]
    assert props["flights"]["items"] == {"$ref": "#/$defs/FlightInfo"}
    assert book.parameters["$defs"]["Payment"]["properties"]["amount"]["type"] == "integer"
    assert from_callable(retail.cancel_pending_order).description.startswith("Cancel a pending order.")
    assert from_callable(airline.send_certificate).side_effects
    assert not from_callable(airline.transfer_to_human_agents).side_effects


# ---- every train task: gold replay and scoring -------------------------------------------------


@pytest.mark.parametrize("domain", DOMAINS)
def test_every_train_task_replays_and_scores_as_in_tau2(domain: str, data_dir: Path) -> None:
    """Per task, one gold database at a time (30 airline copies would take half a GB)."""
    initial = json.loads((data_dir / domain / "db.json").read_text())
    refused, no_op = {}, set()
    for task in load_tasks(domain, data_dir):
        gold = replay(task, data_dir)
        writes = _writes(domain, task)
        # A failing gold read is tau2 data too (a lookup with a wrong id); it changes nothing.
        failed_writes = [f.split()[0] for f in gold.failures if f.split()[0] in writes]
        if failed_writes:
            refused[(domain, task.id)] = failed_writes

        # A perfect agent: the gold end state, and every fact said (in its own words and case).
        infos = task.evaluation_criteria.communicate_info
        said = ["Here is what I found."] + [f"Note: {info.upper()}." for info in infos]
        perfect = score(task, gold.db, said, data_dir)
        assert perfect.passed and perfect.reasons == [], (task.id, perfect.reasons)

        # An agent that does nothing fails every task whose gold trajectory writes, unless all its
        # writes were refused (the documented no-op tasks).
        idle = score(task, initial, [], data_dir)
        if writes and idle.db_match:
            no_op.add((domain, task.id))
        elif writes:
            assert not idle.passed, task.id
            assert idle.reasons[0].startswith("database differs from the gold replay at "), idle.reasons
        else:
            assert idle.db_match and idle.passed == (not infos), task.id
    assert refused == {k: v for k, v in REFUSED_GOLD_WRITES.items() if k[0] == domain}
    assert no_op == {k for k in NO_OP_WRITE_TASKS if k[0] == domain}


# ---- targeted tool behaviour --------------------------------------------------------------------


def _order_with(status: str, db: dict[str, Any], gift_card: bool = False) -> dict[str, Any]:
    for order in db["orders"].values():
        history = order["payment_history"]
        paid_by_card = history[0]["payment_method_id"].startswith("gift_card")
        if order["status"] == status and len(history) == 1 and paid_by_card == gift_card:
            return order
    raise AssertionError(f"no {status} order")


def test_cancel_refuses_a_delivered_order_and_leaves_the_db_alone(retail_dir: Path) -> None:
    order = _order_with("delivered", load_db())
    before = (retail_dir / "db.json").read_bytes()
    with pytest.raises(ValueError, match="^Non-pending order cannot be cancelled$"):
        retail.cancel_pending_order(order["order_id"], "no longer needed")
    assert (retail_dir / "db.json").read_bytes() == before


def test_cancel_refunds_a_gift_card_at_once(retail_dir: Path) -> None:
    db = load_db()
    order = _order_with("pending", db, gift_card=True)
    card = order["payment_history"][0]["payment_method_id"]
    balance = db["users"][order["user_id"]]["payment_methods"][card]["balance"]
    with pytest.raises(ValueError, match="^Invalid reason$"):
        retail.cancel_pending_order(order["order_id"], "changed my mind")
    result = retail.cancel_pending_order(order["order_id"], "ordered by mistake")
    assert result["status"] == "cancelled" and result["cancel_reason"] == "ordered by mistake"
    assert result["payment_history"][-1]["transaction_type"] == "refund"
    on_disk = json.loads((retail_dir / "db.json").read_text())["users"][order["user_id"]]
    amount = order["payment_history"][0]["amount"]
    assert on_disk["payment_methods"][card]["balance"] == round(balance + amount, 2)


def test_exchange_with_a_wrong_payment_method_errors(retail_dir: Path) -> None:
    db = load_db()
    order = _order_with("delivered", db)
    item = order["items"][0]
    other = next(
        v
        for v, variant in db["products"][item["product_id"]]["variants"].items()
        if v != item["item_id"] and variant["available"]
    )
    with pytest.raises(ValueError, match="^Payment method not found$"):
        retail.exchange_delivered_order_items(order["order_id"], [item["item_id"]], [other], "credit_card_0000000")
    with pytest.raises(ValueError, match="^The number of items to be exchanged should match.$"):
        retail.exchange_delivered_order_items(order["order_id"], [item["item_id"]], [], "credit_card_0000000")
    with pytest.raises(ValueError, match="^Order not found$"):
        retail.get_order_details(order["order_id"].lstrip("#"))


def test_book_reservation_checks_payment_then_books(airline_dir: Path) -> None:
    db = load_db()
    user_id, user = next(
        (uid, u)
        for uid, u in db["users"].items()
        if any(m["source"] == "credit_card" for m in u["payment_methods"].values())
    )
    card = next(pid for pid, m in user["payment_methods"].items() if m["source"] == "credit_card")
    number, date, on_date = next(
        (f["flight_number"], d, s)
        for f in db["flights"].values()
        for d, s in f["dates"].items()
        if s["status"] == "available"
    )
    flight = db["flights"][number]
    price = on_date["prices"]["economy"]
    seats = on_date["available_seats"]["economy"]
    args = dict(
        user_id=user_id,
        origin=flight["origin"],
        destination=flight["destination"],
        flight_type="one_way",
        cabin="economy",
        flights=[{"flight_number": number, "date": date}],
        passengers=[{"first_name": "Ada", "last_name": "Lovelace", "dob": "1990-01-01"}],
        total_baggages=1,
        nonfree_baggages=0,
        insurance="yes",
    )
    with pytest.raises(ValueError, match=f"^Payment amount does not add up, total price is {price + 30},"):
        airline.book_reservation(**args, payment_methods=[{"payment_id": card, "amount": 1}])
    booked = airline.book_reservation(**args, payment_methods=[{"payment_id": card, "amount": price + 30}])
    assert booked["reservation_id"] == "HATHAT" and booked["created_at"] == "2024-05-15T15:00:00"
    assert airline.get_reservation_details("HATHAT")["flights"][0]["price"] == price
    assert load_db()["flights"][number]["dates"][date]["available_seats"]["economy"] == seats - 1
    assert "HATHAT" in airline.get_user_details(user_id)["reservations"]
    cancelled = airline.cancel_reservation("HATHAT")
    assert cancelled["status"] == "cancelled" and cancelled["payment_history"][-1]["amount"] == -(price + 30)


def test_certificates_cannot_pay_for_changes(airline_dir: Path) -> None:
    db = load_db()
    reservation = next(r for r in db["reservations"].values() if r.get("status") is None)
    message = airline.send_certificate(reservation["user_id"], 100)
    user_id = reservation["user_id"]
    assert message == f"Certificate certificate_3221322 added to user {user_id} with amount 100."
    with pytest.raises(ValueError, match="^Certificate cannot be used to update reservation$"):
        airline.update_reservation_baggages(
            reservation["reservation_id"], 9, reservation["nonfree_baggages"] + 1, "certificate_3221322"
        )
    with pytest.raises(ValueError, match="^Number of passengers does not match$"):
        airline.update_reservation_passengers(reservation["reservation_id"], [])
    with pytest.raises(ValueError, match="^Reservation NOPE00 not found$"):
        airline.get_reservation_details("NOPE00")


def test_calculate_is_tau2s_arithmetic_and_nothing_else() -> None:
    assert retail.calculate("2 + 2") == "4.0"
    assert airline.calculate("(100 - 20) / 3") == "26.67"
    assert retail.calculate("-2 * (3.5 + 1)") == "-9.0"
    with pytest.raises(ValueError, match="^Invalid characters in expression$"):
        retail.calculate("__import__('os')")
    with pytest.raises(ValueError, match="Exponent too large"):
        retail.calculate("9**9**9")
    with pytest.raises(ZeroDivisionError):
        retail.calculate("1 / 0")
    with pytest.raises(SyntaxError):
        retail.calculate("2 +")


def test_tools_run_in_the_sandboxed_tool_host(tmp_path: Path) -> None:
    shared_data("tau2", "tool_signatures.json")
    from slmflow.core.records import ToolCall
    from tools.executor import ToolExecutor
    from tools.registry import ToolRegistry

    prepare_workdir("retail", DATA, tmp_path)
    order = _order_with("pending", load_db(tmp_path))
    registry = ToolRegistry()
    registry.add_module(tool_module("retail"))
    executor = ToolExecutor(registry, tmp_path)
    try:
        read = executor.call(
            ToolCall(name="get_order_details", arguments={"order_id": order["order_id"]}), registry.names, "job"
        )
        assert read.ok and read.content["order_id"] == order["order_id"], read.error
        write = executor.call(
            ToolCall(
                name="modify_pending_order_address",
                arguments={
                    "order_id": order["order_id"],
                    "address1": "1 Main St",
                    "address2": "",
                    "city": "Austin",
                    "state": "TX",
                    "country": "USA",
                    "zip": "78701",
                },
            ),
            registry.names,
            "job",
        )
        assert write.ok, write.error
    finally:
        executor.close()
    assert load_db(tmp_path)["orders"][order["order_id"]]["address"]["zip"] == "78701"
    assert sorted(os.listdir(tmp_path)) == [".db.json.lock", "db.json"]  # and no temporary file


# ---- the database file ----------------------------------------------------------------------------


def test_db_cache_follows_the_file_and_a_failed_transaction_changes_nothing(tmp_path: Path) -> None:
    save_db({"users": {"a": {"n": 1}}}, tmp_path)
    first = load_db(tmp_path)
    assert load_db(tmp_path) is first  # cached
    (tmp_path / "db.json").write_text(json.dumps({"users": {"a": {"n": 2}}}))  # changed behind its back
    assert load_db(tmp_path)["users"]["a"]["n"] == 2
    with pytest.raises(KeyError), transaction(tmp_path) as db:
        db["users"]["a"]["n"] = 3
        raise KeyError("boom")
    assert load_db(tmp_path)["users"]["a"]["n"] == 2
    with transaction(tmp_path) as db:
        db["users"]["a"]["n"] = 4
    assert json.loads((tmp_path / "db.json").read_text())["users"]["a"]["n"] == 4
    with pytest.raises(EvalError, match="no db.json"):
        load_db(tmp_path / "missing")


def test_prepare_workdir_wants_a_known_domain_and_a_fresh_directory(tmp_path: Path) -> None:
    with pytest.raises(EvalError, match="unknown tau2 domain 'telecom'"):
        prepare_workdir("telecom", tmp_path, tmp_path / "w")
    with pytest.raises(EvalError, match="not found"):
        prepare_workdir("retail", tmp_path, tmp_path / "w")
    (tmp_path / "retail").mkdir()
    (tmp_path / "retail" / "db.json").write_text("{}")
    prepare_workdir("retail", tmp_path, tmp_path / "w")
    with pytest.raises(EvalError, match="already exists"):
        prepare_workdir("retail", tmp_path, tmp_path / "w")


# ---- scoring rules ------------------------------------------------------------------------------


def test_db_hash_is_tau2s_sorted_json_sha256() -> None:
    expected = hashlib.sha256(b'{"a": 1, "b": [2, {"c": null}]}').hexdigest()
    assert db_hash({"b": [2, {"c": None}], "a": 1}) == expected
    assert db_hash({"a": 1.0, "b": [2, {"c": None}]}) != expected  # as in tau2: 1.0 is not 1


def test_communicate_check_is_tau2s_substring_rule() -> None:
    said = ["Your refund of $1,093.34 is on its way.", "The CAMERA ships today."]
    assert missing_info(["1093.34", "camera", "481.50"], said) == ["481.50"]
    assert missing_info([], []) == []


def test_pass_hat_k() -> None:
    results = {"a": [True, True, False], "b": [True, True, True], "c": [False, False, False]}
    assert pass_hat_k(results, 1) == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert pass_hat_k(results, 2) == pytest.approx((1 / 3 + 1 + 0) / 3)
    assert pass_hat_k(results, 3) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="at least 4 trials"):
        pass_hat_k(results, 4)
    with pytest.raises(ValueError):
        pass_hat_k({}, 1)


# ---- tasks and the user simulator --------------------------------------------------------------

_TASK = {
    "id": "7",
    "user_scenario": {
        "persona": None,
        "instructions": {
            "domain": "retail",
            "reason_for_call": "Return the lamp.",
            "known_info": "You are Ann Lee.",
            "unknown_info": None,
            "task_instructions": "Be brief.",
        },
    },
    "evaluation_criteria": {
        "actions": [{"action_id": "7_0", "name": "get_user_details", "arguments": {"user_id": "ann_lee_1"}}],
        "communicate_info": ["secret-fact-42"],
        "nl_assertions": None,
    },
}


def test_load_tasks_gives_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "retail").mkdir()
    with pytest.raises(EvalError, match="tasks_train.json not found"):
        load_tasks("retail", tmp_path)
    bad = dict(_TASK, user_scenario={"instructions": {"domain": "retail"}})
    (tmp_path / "retail" / "tasks_train.json").write_text(json.dumps([_TASK, bad]))
    with pytest.raises(EvalError, match="task 7: user_scenario.instructions.reason_for_call: Field required"):
        load_tasks("retail", tmp_path)
    no_criteria = dict(_TASK, evaluation_criteria={"actions": None})
    (tmp_path / "retail" / "tasks_train.json").write_text(json.dumps([no_criteria]))
    [task] = load_tasks("retail", tmp_path)
    assert task.evaluation_criteria.actions == [] and task.evaluation_criteria.communicate_info == []
    with pytest.raises(EvalError, match="unknown tau2 domain"):
        load_tasks("banking", tmp_path)


def test_user_prompt_holds_the_scenario_and_the_stop_tokens_only() -> None:
    prompt = user_system_prompt(Task.model_validate(_TASK))
    assert "<scenario>\nInstructions:\n\tDomain: retail\n\tReason for call:\n\t\tReturn the lamp." in prompt
    assert "\tKnown info:\n\t\tYou are Ann Lee." in prompt and "Unknown info" not in prompt
    assert all(token in prompt for token in (STOP, TRANSFER, OUT_OF_SCOPE))
    assert "secret-fact-42" not in prompt and "get_user_details" not in prompt  # no answers leak
    assert is_stop("Thanks, that's all. ###STOP###") and not is_stop("Thanks!") and not is_stop(None)
    assert stop_token(f"{STOP} {OUT_OF_SCOPE}") == OUT_OF_SCOPE  # an abort wins: tau2 does not grade it
