"""A realistic exosms app: customers text ORDER <number> and get their order's status.

Run it:   exosms serve --app shop:router     (from this folder, or with it on PYTHONPATH)
Try it:   curl 'http://127.0.0.1:8000/exotel/sms?SmsSid=t1&From=9052161119&To=56070&Body=ORDER+1001'

The orders live in a small SQLite table (``$SHOP_DB``, default ``shop.db`` here), created
with a few sample rows on first use. In a real shop this would be your order system.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from exosms import IncomingSms, Match, Router

SAMPLE_ORDERS = [
    ("1001", "2 x Basmati rice 5kg", "out for delivery"),
    ("1002", "1 x Pressure cooker 3L", "packed and waiting for pickup"),
    ("1003", "6 x Mango pickle 500g", "delivered on 24 Nov"),
]

router = Router()


def _orders() -> sqlite3.Connection:
    path = Path(os.environ.get("SHOP_DB", Path(__file__).with_name("shop.db")))
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE IF NOT EXISTS orders (number TEXT PRIMARY KEY, items TEXT, status TEXT)"
    )
    conn.executemany("INSERT OR IGNORE INTO orders VALUES (?, ?, ?)", SAMPLE_ORDERS)
    conn.commit()
    return conn


@router.keyword("ORDER", "ORD", "STATUS")
def order_status(sms: IncomingSms, match: Match) -> str:
    # A plain function: exosms runs it in a worker thread, so this blocking query is fine.
    number = match.rest.split()[0].lstrip("#") if match.rest else ""
    if not number:
        return "Send ORDER followed by your order number, e.g. ORDER 1001. - Acme Stores"
    with _orders() as conn:
        row = conn.execute(
            "SELECT items, status FROM orders WHERE number = ?", (number,)
        ).fetchone()
    if row is None:
        return f"We could not find order {number}. Please check the number. - Acme Stores"
    items, status = row
    return f"Order {number} ({items}) is {status}. Thank you for shopping with Acme Stores."


@router.keyword("HELP")
async def help_text(sms: IncomingSms, match: Match) -> str:
    return "Acme Stores: send ORDER <number> for your order status."
