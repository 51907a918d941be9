"""The outbox on SQLite: its writes go through the store's one writer thread.

Every write the outbox worker and the status callback make (lease, ``posting``, ``sent``,
the sweep, a delivery status) is one plain statement, or one small transaction, run by the
writer with the hot path's claims and answers: no SQLAlchemy statement built per call, no
hand-off through a pooled aiosqlite connection, no second connection contending for the
write lock, and many of them share one fsync. Through SQLAlchemy each cost about 0.85 ms
of CPU; here about 0.1 ms (bench/README.md).

Durable before it is relied on: ``posting`` (the POST follows it) waits for the disk, and
so does a status callback (Exotel does not send it twice) that settles a send in doubt or
names no SMS we know. The rest is committed without waiting (``durable=False``), made
durable by the next fsync, and safe to lose in a power cut (a killed process loses
nothing committed): a lost lease leaves the row due (it was never posted), a lost ``sent``
leaves it ``posting``, which the sweep makes ``unknown`` and its status callback settles:
never resent blindly; a lost delivery status of a sent SMS is looked up again from
Exotel by the reconciler.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from exosms.store.outbox import (
    DIED_NOTE,
    HELD,
    HELD_NOTE,
    PENDING,
    POSTING,
    RESENT_NOTE,
    SENT,
    UNKNOWN,
    Outbox,
    OutboxRow,
    Sent,
    delivery_rank,
    status_values,
)

Submit = Callable[..., Awaitable[Any]]  # GroupCommitWriter.submit(work, *args, durable=...)

_COLUMNS = ", ".join(OutboxRow.__slots__)
_ENQUEUE = (
    "INSERT INTO outbox (message_sid, to_number, sender, body, template_id, status, attempts,"
    " next_attempt_at, created_at, parts, author) VALUES (:message_sid, :to_number, :sender,"
    " :body, :template_id, :status, :attempts, :next_attempt_at, :created_at, :parts, :author)"
    " ON CONFLICT (message_sid) DO NOTHING"
)
_LEASE_DUE = (  # constant columns, bound values; each part read in the due index's order
    "WITH pending AS (SELECT id, next_attempt_at FROM outbox WHERE status = 'pending'"  # noqa: S608
    " AND next_attempt_at <= :now ORDER BY next_attempt_at LIMIT :limit),"
    " expired AS (SELECT id, next_attempt_at FROM outbox WHERE status = 'sending'"
    " AND lease_until < :now ORDER BY next_attempt_at LIMIT :limit)"
    " UPDATE outbox SET status = 'sending', lease_until = :until, attempts = attempts + 1"
    " WHERE id IN (SELECT id FROM (SELECT * FROM pending UNION ALL SELECT * FROM expired)"
    f" ORDER BY next_attempt_at LIMIT :limit) RETURNING {_COLUMNS}"
)
_LEASE_ONE = (  # constant columns, bound values
    "UPDATE outbox SET status = 'sending', lease_until = ?, attempts = attempts + 1"  # noqa: S608
    f" WHERE id = ? AND status = 'pending' RETURNING {_COLUMNS}"
)
_DIED = (
    "UPDATE outbox SET status = 'unknown', next_attempt_at = :wait, lease_until = NULL,"
    " last_error = :why WHERE status = 'posting' AND lease_until < :now"
)
_SETTLE = (
    "UPDATE outbox SET status = :to, next_attempt_at = :now,"
    " last_error = COALESCE(last_error, '') || :why"
    " WHERE status = 'unknown' AND next_attempt_at <= :now"
)
_POSTING = "UPDATE outbox SET status = 'posting' WHERE id = ?"
_SENT = (
    "UPDATE outbox SET status = 'sent', exotel_sid = ?, sent_at = ?, lease_until = NULL,"
    " template_id = ?, last_error = NULL WHERE id = ?"
)
_TOUCH_EVENT = "UPDATE delivery_events SET received_at = received_at WHERE id = ?"
_BY_EXOTEL_SID = "SELECT id FROM outbox WHERE exotel_sid = ?"
_CURRENT = "SELECT status, delivery_status FROM outbox WHERE id = ?"
_EVENT = (
    "INSERT INTO delivery_events (exotel_sid, outbox_id, status, payload, received_at)"
    " VALUES (?, ?, ?, ?, ?)"
)


class SqliteOutbox(Outbox):
    """:class:`Outbox` whose writes run in the SQLite store's writer thread; its reads (the
    pages, the reconciler's look-up) stay on ``engine``."""

    def __init__(self, engine: AsyncEngine, submit: Submit) -> None:
        super().__init__(engine)
        self._submit = submit

    async def _insert(self, values: dict[str, Any]) -> int | None:
        row_id: int | None = await self._submit(_enqueue, values)
        return row_id

    async def lease_due(self, limit: int, lease: float) -> list[OutboxRow]:
        now = time.time()
        found = {"now": now, "until": now + lease, "limit": limit}
        rows: list[OutboxRow] = await self._submit(_returning, _LEASE_DUE, found, durable=False)
        return sorted(rows, key=lambda r: r.id)

    async def lease(self, row_id: int, lease: float) -> OutboxRow | None:
        until = time.time() + lease
        rows: list[OutboxRow] = await self._submit(
            _returning, _LEASE_ONE, (until, row_id), durable=False
        )
        return rows[0] if rows else None

    async def _set(self, row_id: int, *, only_if: tuple[str, ...] = (), **values: Any) -> bool:
        # Not durable (see the module's docstring): ``posting`` is, below.
        done: bool = await self._submit(_set, row_id, only_if, values, durable=False)
        return done

    async def mark_posting(self, row_ids: Sequence[int]) -> None:
        await self._submit(_posting, list(row_ids))  # durable: the POSTs follow

    async def mark_all_sent(self, sent: Sequence[Sent]) -> None:
        if sent:
            now = time.time()
            many = [(s.exotel_sid, now, s.template_id, s.row_id) for s in sent]
            await self._submit(_sent, many, durable=False)

    async def sweep(self, now: float, unknown_wait: float, resend: bool) -> tuple[int, int]:
        why = RESENT_NOTE if resend else HELD_NOTE
        settle = {"to": PENDING if resend else HELD, "now": now, "why": why}
        died = {"now": now, "wait": now + unknown_wait, "why": DIED_NOTE}
        counts: tuple[int, int] = await self._submit(_sweep, died, settle, durable=False)
        return counts

    async def record_status(
        self, fields: Mapping[str, str], row_id: int | None = None
    ) -> int | None:
        recorded: tuple[int | None, int, bool] = await self._submit(
            _record_status, dict(fields), row_id, time.time(), durable=False
        )
        found, event, needs_disk = recorded
        if needs_disk:
            # It settled an SMS whose send was in doubt, or it names no SMS we know: nothing
            # could make it good after a power cut (the reconciler looks up sent SMS only),
            # so it waits for the disk: its own row rewritten in a durable write.
            await self._submit(_touch_event, event)
        return found


def _enqueue(conn: sqlite3.Connection, values: dict[str, Any]) -> int | None:
    cursor = conn.execute(_ENQUEUE, values)
    return int(cursor.lastrowid) if cursor.rowcount == 1 and cursor.lastrowid else None


def _returning(
    conn: sqlite3.Connection, sql: str, params: Mapping[str, Any] | tuple[Any, ...]
) -> list[OutboxRow]:
    return [OutboxRow(*record) for record in conn.execute(sql, params).fetchall()]


def _set(
    conn: sqlite3.Connection, row_id: int, only_if: tuple[str, ...], values: dict[str, Any]
) -> bool:
    # Column names come from the Outbox's own methods, never from input.
    assignments = ", ".join(f"{name} = ?" for name in values)
    sql = f"UPDATE outbox SET {assignments} WHERE id = ?"  # noqa: S608 (bound values)
    params = [*values.values(), row_id]
    if only_if:
        sql += " AND status IN (" + ", ".join("?" * len(only_if)) + ")"
        params += only_if
    return conn.execute(sql, params).rowcount == 1


def _posting(conn: sqlite3.Connection, row_ids: list[int]) -> None:
    conn.executemany(_POSTING, [(row_id,) for row_id in row_ids])


def _sent(conn: sqlite3.Connection, many: list[tuple[str, float, str | None, int]]) -> None:
    conn.executemany(_SENT, many)


def _sweep(
    conn: sqlite3.Connection, died: Mapping[str, Any], settle: Mapping[str, Any]
) -> tuple[int, int]:
    return conn.execute(_DIED, died).rowcount, conn.execute(_SETTLE, settle).rowcount


def _record_status(
    conn: sqlite3.Connection, fields: dict[str, str], row_id: int | None, now: float
) -> tuple[int | None, int, bool]:
    """As :meth:`Outbox.record_status`, in one transaction of the writer: the row, the
    delivery event's id, and whether the callback settled a send in doubt or named no row."""
    in_doubt = False
    sid = fields.get("SmsSid", "")
    status = fields.get("Status", "").strip().lower().replace("-", "_")[:32]
    if row_id is None and sid:
        found = conn.execute(_BY_EXOTEL_SID, (sid,)).fetchone()
        row_id = None if found is None else int(found[0])
    current = None if row_id is None else conn.execute(_CURRENT, (row_id,)).fetchone()
    if current is None or row_id is None:
        row_id = None
    elif delivery_rank(status) > delivery_rank(current[1]):
        values = status_values(fields, status)
        if current[0] in (POSTING, UNKNOWN, HELD):
            in_doubt = True
            values.update(status=SENT, sent_at=now, lease_until=None)
            if sid:
                values["exotel_sid"] = sid[:128]
        _set(conn, row_id, (), values)
    payload = json.dumps(fields, ensure_ascii=False)
    event = conn.execute(_EVENT, (sid[:128] or None, row_id, status or None, payload, now))
    return row_id, int(event.lastrowid or 0), in_doubt or row_id is None


def _touch_event(conn: sqlite3.Connection, event: int) -> None:
    conn.execute(_TOUCH_EVENT, (event,))
