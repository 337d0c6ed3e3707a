"""The order desk's starting data: written into a fresh tool directory's SQLite on first use."""

from datetime import date

TODAY = date(2026, 11, 28)  # fixed, so that eligibility does not drift with the calendar

ORDERS = [
    {
        "order_id": "NB-10442",
        "customer": "ana@example.com",
        "product": "Nimbus Hub",
        "total": 129.0,
        "status": "shipped",
        "delivered_on": None,
    },
    {
        "order_id": "NB-10517",
        "customer": "li@example.com",
        "product": "Nimbus Cloud Pro",
        "total": 19.99,
        "status": "delivered",
        "delivered_on": "2026-11-20",
    },
    {
        "order_id": "NB-10390",
        "customer": "sam@example.com",
        "product": "Nimbus Cam",
        "total": 89.5,
        "status": "delivered",
        "delivered_on": "2026-11-10",
    },
    {
        "order_id": "NB-10211",
        "customer": "kim@example.com",
        "product": "Nimbus Hub",
        "total": 129.0,
        "status": "delivered",
        "delivered_on": "2026-09-02",
    },
    {
        "order_id": "NB-10603",
        "customer": "joe@example.com",
        "product": "Nimbus Cam",
        "total": 89.5,
        "status": "delivered",
        "delivered_on": "2026-11-25",
    },
    {
        "order_id": "NB-10618",
        "customer": "eve@example.com",
        "product": "Nimbus Hub",
        "total": 129.0,
        "status": "processing",
        "delivered_on": None,
    },
]
