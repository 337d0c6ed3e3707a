"""tau2's retail domain tools, ported from tau2-bench `src/tau2/domains/retail/tools.py` onto the
plain-dict database in `db.json` (see `evals.tau2.db`).

The checks, the changes to the database and the error messages are tau2's, since the agent reads
those messages and the scorer compares database states. Tools return copies, never parts of the
cached database.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from evals.tau2 import arithmetic
from evals.tau2.db import load_db, transaction
from tools.registry import tool

_CANCEL_REASONS = {"no longer needed", "ordered by mistake"}


def _order(db: dict[str, Any], order_id: str) -> dict[str, Any]:
    if order_id not in db["orders"]:
        raise ValueError("Order not found")
    return db["orders"][order_id]


def _user(db: dict[str, Any], user_id: str) -> dict[str, Any]:
    if user_id not in db["users"]:
        raise ValueError("User not found")
    return db["users"][user_id]


def _product(db: dict[str, Any], product_id: str) -> dict[str, Any]:
    if product_id not in db["products"]:
        raise ValueError("Product not found")
    return db["products"][product_id]


def _variant(db: dict[str, Any], product_id: str, variant_id: str) -> dict[str, Any]:
    product = _product(db, product_id)
    if variant_id not in product["variants"]:
        raise ValueError("Variant not found")
    return product["variants"][variant_id]


def _payment_method(db: dict[str, Any], user_id: str, payment_method_id: str) -> dict[str, Any]:
    user = _user(db, user_id)
    if payment_method_id not in user["payment_methods"]:
        raise ValueError("Payment method not found")
    return user["payment_methods"][payment_method_id]


def _is_gift_card(payment_method: dict[str, Any]) -> bool:
    return payment_method["source"] == "gift_card"


def _is_pending(order: dict[str, Any]) -> bool:
    # tau2's loose check ("pending (item modified)" counts), used for address and payment changes;
    # cancelling and modifying items require the status to be exactly "pending".
    return "pending" in order["status"]


def _check_items_in_order(order: dict[str, Any], item_ids: list[str], message: str) -> None:
    """Each item id appears in the order at least as often as in `item_ids`."""
    in_order = [item["item_id"] for item in order["items"]]
    for item_id in item_ids:
        if item_ids.count(item_id) > in_order.count(item_id):
            raise ValueError(message.format(item_id=item_id))


def _order_item(order: dict[str, Any], item_id: str) -> dict[str, Any]:
    item = next((item for item in order["items"] if item["item_id"] == item_id), None)
    if item is None:
        raise ValueError(f"Item {item_id} not found")
    return item


@tool
def calculate(expression: str) -> str:
    """Calculate the result of a mathematical expression.

    Args:
        expression: The mathematical expression to calculate, such as '2 + 2'. The expression can contain
            numbers, operators (+, -, *, /), parentheses, and spaces.
    """
    return arithmetic.calculate(expression)


@tool(side_effects=True)
def cancel_pending_order(order_id: str, reason: str) -> dict:
    """Cancel a pending order. If the order is already processed or delivered,
    it cannot be cancelled. The agent needs to explain the cancellation detail
    and ask for explicit user confirmation (yes/no) to proceed. If the user confirms,
    the order status will be changed to 'cancelled' and the payment will be refunded.
    The refund will be added to the user's gift card balance immediately if the payment
    was made using a gift card, otherwise the refund would take 5-7 business days to process.
    The function returns the order details after the cancellation.

    Args:
        order_id: The order id, such as '#W0000000'. Be careful there is a '#' symbol at the beginning of the
            order id.
        reason: The reason for cancellation, which should be either 'no longer needed' or 'ordered by
            mistake'.
    """
    with transaction() as db:
        order = _order(db, order_id)
        if order["status"] != "pending":
            raise ValueError("Non-pending order cannot be cancelled")
        if reason not in _CANCEL_REASONS:
            raise ValueError("Invalid reason")
        refunds = []
        for payment in order["payment_history"]:
            refunds.append(
                {
                    "transaction_type": "refund",
                    "amount": payment["amount"],
                    "payment_method_id": payment["payment_method_id"],
                }
            )
            method = _payment_method(db, order["user_id"], payment["payment_method_id"])
            if _is_gift_card(method):  # gift cards are refunded at once
                method["balance"] = round(method["balance"] + payment["amount"], 2)
        order["status"] = "cancelled"
        order["cancel_reason"] = reason
        order["payment_history"].extend(refunds)
        return copy.deepcopy(order)


@tool(side_effects=True)
def exchange_delivered_order_items(
    order_id: str, item_ids: list[str], new_item_ids: list[str], payment_method_id: str
) -> dict:
    """Exchange items in a delivered order to new items of the same product type.
    For a delivered order, return or exchange can be only done once by the agent.
    The agent needs to explain the exchange detail and ask for explicit user confirmation (yes/no) to proceed.

    Args:
        order_id: The order id, such as '#W0000000'. Be careful there is a '#' symbol at the beginning of the
            order id.
        item_ids: The item ids to be exchanged, each such as '1008292230'. There could be duplicate items in
            the list.
        new_item_ids: The item ids to be exchanged for, each such as '1008292230'.
            There could be duplicate items in the list. Each new item id should match the item id
            in the same position and be of the same product.
        payment_method_id: The payment method id to pay or receive refund for the item price difference,
            such as 'gift_card_0000000' or 'credit_card_0000000'. These can be looked up
            from the user or order details.
    """
    with transaction() as db:
        order = _order(db, order_id)
        if order["status"] != "delivered":
            raise ValueError("Non-delivered order cannot be exchanged")
        _check_items_in_order(order, item_ids, "Number of {item_id} not found.")
        if len(item_ids) != len(new_item_ids):
            raise ValueError("The number of items to be exchanged should match.")
        diff_price: float = 0
        for item_id, new_item_id in zip(item_ids, new_item_ids, strict=True):
            item = _order_item(order, item_id)
            variant = _variant(db, item["product_id"], new_item_id)
            if not variant["available"]:
                raise ValueError(f"New item {new_item_id} not found or available")
            diff_price += variant["price"] - item["price"]
        diff_price = round(diff_price, 2)
        method = _payment_method(db, order["user_id"], payment_method_id)
        if _is_gift_card(method) and method["balance"] < diff_price:
            raise ValueError("Insufficient gift card balance to pay for the price difference")
        order["status"] = "exchange requested"
        order["exchange_items"] = sorted(item_ids)
        order["exchange_new_items"] = sorted(new_item_ids)
        order["exchange_payment_method_id"] = payment_method_id
        order["exchange_price_difference"] = diff_price
        return copy.deepcopy(order)


@tool
def find_user_id_by_name_zip(first_name: str, last_name: str, zip: str) -> str:
    """Find user id by first name, last name, and zip code. If the user is not found, the function
    will return an error message. By default, find user id by email, and only call this function
    if the user is not found by email or cannot remember email.

    Args:
        first_name: The first name of the customer, such as 'John'.
        last_name: The last name of the customer, such as 'Doe'.
        zip: The zip code of the customer, such as '12345'.
    """
    for user_id, user in load_db()["users"].items():
        if (
            user["name"]["first_name"].lower() == first_name.lower()
            and user["name"]["last_name"].lower() == last_name.lower()
            and user["address"]["zip"] == zip
        ):
            return user_id
    raise ValueError("User not found")


@tool
def find_user_id_by_email(email: str) -> str:
    """Find user id by email. If the user is not found, the function will return an error message.

    Args:
        email: The email of the user, such as 'something@example.com'.
    """
    for user_id, user in load_db()["users"].items():
        if user["email"].lower() == email.lower():
            return user_id
    raise ValueError("User not found")


@tool
def get_order_details(order_id: str) -> dict:
    """Get the status and details of an order.

    Args:
        order_id: The order id, such as '#W0000000'. Be careful there is a '#' symbol at the beginning of the
            order id.
    """
    return copy.deepcopy(_order(load_db(), order_id))


@tool
def get_product_details(product_id: str) -> dict:
    """Get the inventory details of a product.

    Args:
        product_id: The product id, such as '6086499569'. Be careful the product id is different from the item
            id.
    """
    return copy.deepcopy(_product(load_db(), product_id))


@tool
def get_user_details(user_id: str) -> dict:
    """Get the details of a user, including their orders.

    Args:
        user_id: The user id, such as 'sara_doe_496'.
    """
    return copy.deepcopy(_user(load_db(), user_id))


@tool
def list_all_product_types() -> str:
    """List the name and product id of all product types.
    Each product type has a variety of different items with unique item ids and options.
    There are only 50 product types in the store.
    """
    products = {p["name"]: p["product_id"] for p in load_db()["products"].values()}
    return json.dumps(products, sort_keys=True)


@tool(side_effects=True)
def modify_pending_order_address(
    order_id: str, address1: str, address2: str, city: str, state: str, country: str, zip: str
) -> dict:
    """Modify the shipping address of a pending order. The agent needs to explain the modification detail and
    ask for explicit user confirmation (yes/no) to proceed.

    Args:
        order_id: The order id, such as '#W0000000'. Be careful there is a '#' symbol at the beginning of the
            order id.
        address1: The first line of the address, such as '123 Main St'.
        address2: The second line of the address, such as 'Apt 1' or ''.
        city: The city, such as 'San Francisco'.
        state: The state, such as 'CA'.
        country: The country, such as 'USA'.
        zip: The zip code, such as '12345'.
    """
    with transaction() as db:
        order = _order(db, order_id)
        if not _is_pending(order):
            raise ValueError("Non-pending order cannot be modified")
        order["address"] = {
            "address1": address1,
            "address2": address2,
            "city": city,
            "state": state,
            "country": country,
            "zip": zip,
        }
        return copy.deepcopy(order)


@tool(side_effects=True)
def modify_pending_order_items(
    order_id: str, item_ids: list[str], new_item_ids: list[str], payment_method_id: str
) -> dict:
    """Modify items in a pending order to new items of the same product type. For a pending order, this
    function can only be called once. The agent needs to explain the exchange detail and ask for explicit user
    confirmation (yes/no) to proceed.

    Args:
        order_id: The order id, such as '#W0000000'. Be careful there is a '#' symbol at the beginning of the
            order id.
        item_ids: The item ids to be modified, each such as '1008292230'. There could be duplicate items in
            the list.
        new_item_ids: The item ids to be modified for, each such as '1008292230'. There could be duplicate
            items in the list. Each new item id should match the item id in the same position and be of the
            same product.
        payment_method_id: The payment method id to pay or receive refund for the item price difference, such
            as 'gift_card_0000000' or 'credit_card_0000000'. These can be looked up from the user or order
            details.
    """
    with transaction() as db:
        order = _order(db, order_id)
        if order["status"] != "pending":
            raise ValueError("Non-pending order cannot be modified")
        _check_items_in_order(order, item_ids, "{item_id} not found")
        if len(item_ids) != len(new_item_ids):
            raise ValueError("The number of items to be exchanged should match")
        diff_price: float = 0
        variant: dict[str, Any] = {}
        for item_id, new_item_id in zip(item_ids, new_item_ids, strict=True):
            if item_id == new_item_id:
                raise ValueError("The new item id should be different from the old item id")
            item = _order_item(order, item_id)
            variant = _variant(db, item["product_id"], new_item_id)
            if not variant["available"]:
                raise ValueError(f"New item {new_item_id} not found or available")
            diff_price += variant["price"] - item["price"]
        method = _payment_method(db, order["user_id"], payment_method_id)
        if _is_gift_card(method) and method["balance"] < diff_price:
            raise ValueError("Insufficient gift card balance to pay for the new item")
        order["payment_history"].append(
            {
                "transaction_type": "payment" if diff_price > 0 else "refund",
                "amount": abs(diff_price),
                "payment_method_id": payment_method_id,
            }
        )
        if _is_gift_card(method):
            method["balance"] = round(method["balance"] - diff_price, 2)
        for item_id, new_item_id in zip(item_ids, new_item_ids, strict=True):
            item = _order_item(order, item_id)
            item["item_id"] = new_item_id
            # tau2 gives every modified item the price and options of the LAST new variant; kept,
            # so that database states (and what the agent is told) match the benchmark's.
            item["price"] = variant["price"]
            item["options"] = copy.deepcopy(variant["options"])
        order["status"] = "pending (item modified)"
        return copy.deepcopy(order)


@tool(side_effects=True)
def modify_pending_order_payment(order_id: str, payment_method_id: str) -> dict:
    """Modify the payment method of a pending order. The agent needs to explain the modification detail and
    ask for explicit user confirmation (yes/no) to proceed.

    Args:
        order_id: The order id, such as '#W0000000'. Be careful there is a '#' symbol at the beginning of the
            order id.
        payment_method_id: The payment method id to pay or receive refund for the item price difference, such
            as 'gift_card_0000000' or 'credit_card_0000000'. These can be looked up from the user or order
            details.
    """
    with transaction() as db:
        order = _order(db, order_id)
        if not _is_pending(order):
            raise ValueError("Non-pending order cannot be modified")
        method = _payment_method(db, order["user_id"], payment_method_id)
        history = order["payment_history"]
        if len(history) != 1 or history[0]["transaction_type"] != "payment":
            raise ValueError("There should be exactly one payment for a pending order")
        old_method_id = history[0]["payment_method_id"]
        if old_method_id == payment_method_id:
            raise ValueError("The new payment method should be different from the current one")
        amount = history[0]["amount"]
        if _is_gift_card(method) and method["balance"] < amount:
            raise ValueError("Insufficient gift card balance to pay for the order")
        history.extend(
            [
                {"transaction_type": "payment", "amount": amount, "payment_method_id": payment_method_id},
                {"transaction_type": "refund", "amount": amount, "payment_method_id": old_method_id},
            ]
        )
        if _is_gift_card(method):
            method["balance"] = round(method["balance"] - amount, 2)
        old_method = _payment_method(db, order["user_id"], old_method_id)
        if _is_gift_card(old_method):
            old_method["balance"] = round(old_method["balance"] + amount, 2)
        return copy.deepcopy(order)


@tool(side_effects=True)
def modify_user_address(
    user_id: str, address1: str, address2: str, city: str, state: str, country: str, zip: str
) -> dict:
    """Modify the default address of a user. The agent needs to explain the modification detail and ask for
    explicit user confirmation (yes/no) to proceed.

    Args:
        user_id: The user id, such as 'sara_doe_496'.
        address1: The first line of the address, such as '123 Main St'.
        address2: The second line of the address, such as 'Apt 1' or ''.
        city: The city, such as 'San Francisco'.
        state: The state, such as 'CA'.
        country: The country, such as 'USA'.
        zip: The zip code, such as '12345'.
    """
    with transaction() as db:
        user = _user(db, user_id)
        user["address"] = {
            "address1": address1,
            "address2": address2,
            "city": city,
            "state": state,
            "country": country,
            "zip": zip,
        }
        return copy.deepcopy(user)


@tool(side_effects=True)
def return_delivered_order_items(order_id: str, item_ids: list[str], payment_method_id: str) -> dict:
    """Return some items of a delivered order.
    The order status will be changed to 'return requested'.
    The agent needs to explain the return detail and ask for explicit user confirmation (yes/no) to proceed.
    The user will receive follow-up email for how and where to return the item.

    Args:
        order_id: The order id, such as '#W0000000'. Be careful there is a '#' symbol at the beginning of the
            order id.
        item_ids: The item ids to be returned, each such as '1008292230'. There could be duplicate items in
            the list.
        payment_method_id: The payment method id to pay or receive refund for the item price difference, such
            as 'gift_card_0000000' or 'credit_card_0000000'.
            These can be looked up from the user or order details.
    """
    with transaction() as db:
        order = _order(db, order_id)
        if order["status"] != "delivered":
            raise ValueError("Non-delivered order cannot be returned")
        method = _payment_method(db, order["user_id"], payment_method_id)
        original = order["payment_history"][0]["payment_method_id"]
        if not _is_gift_card(method) and payment_method_id != original:
            raise ValueError("Payment method should be the original payment method")
        _check_items_in_order(order, item_ids, "Some item not found")
        order["status"] = "return requested"
        order["return_items"] = sorted(item_ids)
        order["return_payment_method_id"] = payment_method_id
        return copy.deepcopy(order)


@tool
def transfer_to_human_agents(summary: str) -> str:
    """Transfer the user to a human agent, with a summary of the user's issue.
    Only transfer if
     -  the user explicitly asks for a human agent
     -  given the policy and the available tools, you cannot solve the user's issue.

    Args:
        summary: A summary of the user's issue.
    """
    return "Transfer successful"
