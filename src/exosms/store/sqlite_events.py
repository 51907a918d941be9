"""Events on SQLite: the hand-out, the leases and their outcomes go through the store's one
writer thread.

Each is a whole transaction run by the writer (no wait on the event loop between its
statements while it holds SQLite's write lock), batched with the hot path's claims and
answers. Written without waiting for the disk (``durable=False``): a crash can lose a
"delivered" mark (the event is sent again, with its id: at least once) or a hand-out (its
rows and its marks go together, and are made again), never an event.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from exosms.store.events import (
    FAILED_SQL,
    FAN_OUT_BATCH,
    INSERT_FORWARD_SQL,
    LEASE_SQL,
    EventStore,
    Failure,
    Lease,
    Route,
    failure_rows,
    forwards_for,
)

Submit = Callable[..., Awaitable[Any]]  # GroupCommitWriter.submit(work, *args, durable=...)
_IDS = "(SELECT value FROM json_each(:ids))"


class SqliteEventStore(EventStore):
    """:class:`EventStore` whose writes run in the SQLite store's writer thread."""

    def __init__(self, engine: AsyncEngine, submit: Submit) -> None:
        super().__init__(engine)
        self._submit = submit

    async def fan_out(self, routes: Sequence[Route], limit: int = FAN_OUT_BATCH) -> int:
        """See :meth:`EventStore.fan_out`."""
        count: int = await self._submit(_fan_out, list(routes), limit, durable=False)
        return count

    async def lease(self, destination: str, limit: int, seconds: float) -> list[Lease]:
        """See :meth:`EventStore.lease`."""
        leases: list[Lease] = await self._submit(_lease, destination, limit, seconds, durable=False)
        return leases

    async def settle(
        self,
        delivered: Sequence[int] = (),
        failed: Sequence[Failure] = (),
        released: Sequence[int] = (),
    ) -> None:
        """See :meth:`EventStore.settle`."""
        if delivered or failed or released:
            await self._submit(
                _settle, list(delivered), list(failed), list(released), durable=False
            )


def _fan_out(conn: sqlite3.Connection, routes: list[Route], limit: int) -> int:
    rows = conn.execute(
        "SELECT e.id, e.type, e.sender, e.recipient, m.rule, m.outcome FROM events e"
        " LEFT JOIN messages m ON m.sms_sid = e.sms_sid WHERE e.fanned = 0"
        " ORDER BY e.id LIMIT :limit",
        {"limit": limit},
    ).fetchall()
    if not rows:
        return 0
    forwards = forwards_for(rows, routes, time.time())
    if forwards:
        conn.executemany(INSERT_FORWARD_SQL, forwards)
    ids = json.dumps([row[0] for row in rows])
    conn.execute(f"UPDATE events SET fanned = 1 WHERE id IN {_IDS}", {"ids": ids})  # noqa: S608
    return len(rows)


def _lease(conn: sqlite3.Connection, destination: str, limit: int, seconds: float) -> list[Lease]:
    now = time.time()
    rows = conn.execute(
        LEASE_SQL, {"until": now + seconds, "destination": destination, "now": now, "limit": limit}
    ).fetchall()
    if not rows:
        return []
    ids = json.dumps([row[1] for row in rows])
    created = dict(
        conn.execute(
            f"SELECT id, created_at FROM events WHERE id IN {_IDS}",  # noqa: S608
            {"ids": ids},
        ).fetchall()
    )
    leases = [Lease(r[0], r[1], r[2], r[3], float(created.get(r[1], now))) for r in rows]
    return sorted(leases, key=lambda lease: lease.id)


def _settle(
    conn: sqlite3.Connection, delivered: list[int], failed: list[Failure], released: list[int]
) -> None:
    now = time.time()
    if delivered:
        conn.execute(
            "UPDATE forwards SET state = 'delivered', delivered_at = :now,"  # noqa: S608
            f" attempts = attempts + 1, lease_until = NULL WHERE id IN {_IDS}",
            {"now": now, "ids": json.dumps(delivered)},
        )
    if failed:
        conn.executemany(FAILED_SQL, failure_rows(failed))
    if released:
        conn.execute(
            f"UPDATE forwards SET lease_until = NULL WHERE id IN {_IDS}",  # noqa: S608
            {"ids": json.dumps(released)},
        )
