"""The order desk's tools: order lookup, refund eligibility and refunds over a local SQLite database.

The database lives in the job's tool directory (the only place these sandboxed tools may touch)
and is created there from `order_seed.ORDERS` on first use, so every fresh state directory starts from
the same orders. `issue_refund` changes the world: it runs only after its call passed
verification, and at most once per ticket and arguments.
"""

from __future__ import annotations

import sqlite3
from datetime import date

from order_seed import ORDERS, TODAY

from tools import tool

DB = "orders.sqlite"
RETURN_WINDOW_DAYS = 30


def _db() -> sqlite3.Connection:
    db = sqlite3.connect(DB)
    db.row_factory = sqlite3.Row
    with db:
        db.execute(
            "CREATE TABLE IF NOT EXISTS orders (order_id TEXT PRIMARY KEY, customer TEXT, product TEXT, "
            "total REAL, status TEXT, delivered_on TEXT, refunded REAL NOT NULL DEFAULT 0)"
        )
        db.executemany(
            "INSERT OR IGNORE INTO orders (order_id, customer, product, total, status, delivered_on) "
            "VALUES (:order_id, :customer, :product, :total, :status, :delivered_on)",
            ORDERS,
        )
    return db


def _order(db: sqlite3.Connection, order_id: str) -> sqlite3.Row:
    row = db.execute("SELECT * FROM orders WHERE order_id = ?", (order_id.strip().upper(),)).fetchone()
    if row is None:
        raise LookupError(f"no order {order_id!r}")
    return row


@tool
def lookup_order(order_id: str) -> dict:
    """Look up an order: its customer, product, total, status and delivery date.

    Args:
        order_id: the order number, such as 'NB-10442'.
    """
    with _db() as db:
        return dict(_order(db, order_id))


@tool
def refund_eligibility(order_id: str) -> dict:
    """Check whether an order can be refunded, and for how much.

    Args:
        order_id: the order number, such as 'NB-10442'.
    """
    with _db() as db:
        order = _order(db, order_id)
    left = round(order["total"] - order["refunded"], 2)
    if order["status"] != "delivered":
        return {"eligible": False, "reason": f"order is {order['status']}, not delivered", "max_amount": 0}
    age = (TODAY - date.fromisoformat(order["delivered_on"])).days
    if age > RETURN_WINDOW_DAYS:
        return {
            "eligible": False,
            "reason": f"delivered {age} days ago; the window is {RETURN_WINDOW_DAYS}",
            "max_amount": 0,
        }
    if left <= 0:
        return {"eligible": False, "reason": "already refunded", "max_amount": 0}
    return {"eligible": True, "reason": f"delivered {age} days ago", "max_amount": left}


@tool(side_effects=True)
def issue_refund(order_id: str, amount: float) -> dict:
    """Refund an eligible order, up to what is left of its total.

    Args:
        order_id: the order number, such as 'NB-10442'.
        amount: the amount to refund, in dollars.
    """
    eligibility = refund_eligibility(order_id)
    if not eligibility["eligible"]:
        raise ValueError(f"not refundable: {eligibility['reason']}")
    if not 0 < amount <= eligibility["max_amount"]:
        raise ValueError(f"amount must be between 0 and {eligibility['max_amount']}")
    with _db() as db:
        db.execute("UPDATE orders SET refunded = refunded + ? WHERE order_id = ?", (amount, order_id.strip().upper()))
        return {"refunded": amount, "order_id": order_id.strip().upper()}
