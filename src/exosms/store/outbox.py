"""The outbox: every SMS sent through Exotel's API is stored first, then sent once.

Written with SQLAlchemy Core for both databases. A row moves through:

``pending`` -> ``sending`` (leased by a worker) -> ``posting`` (written before the POST) ->
``sent`` | ``failed`` | ``unknown`` (Exotel's answer was lost) -> ``held`` (for a person).

Due rows are leased; on PostgreSQL with ``FOR UPDATE SKIP LOCKED``, so several server
processes share the work without sending a row twice. A ``sending`` row whose lease ran out
was never posted: it is due again. A ``posting`` row whose lease ran out may have reached
Exotel: it becomes ``unknown``, never resent blindly. An ``unknown`` row that a status
callback (our signed ``CustomField``) does not settle within the wait is held for a person,
or resent when the policy says so. Delivery status only moves forward.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, insert, select, union_all, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from exosms.store.base import StoreUnavailable
from exosms.store.errors import reason, sql_errors
from exosms.store.schema import delivery_events, outbox

PENDING, SENDING, POSTING, SENT, FAILED = "pending", "sending", "posting", "sent", "failed"
UNKNOWN, HELD = "unknown", "held"
# Exotel's delivery statuses, in the order they can follow each other; the last are final.
_RANK = {"queued": 1, "sending": 2, "submitted": 3}
FINAL_DELIVERY = ("sent", "delivered", "failed", "failed_dnd")
for _final in FINAL_DELIVERY:
    _RANK[_final] = 4


# Why a row changed state on its own (its last_error): the sweep's notes.
DIED_NOTE = "the sending process stopped after posting: it may have been sent"
RESENT_NOTE = "; no status callback came: sent again (unknown_policy = resend)"
HELD_NOTE = "; no status callback came: held for a person (exosms outbox resend or give-up)"


def delivery_rank(status: str | None) -> int:
    return _RANK.get(status or "", 0)


def status_values(fields: Mapping[str, str], status: str) -> dict[str, Any]:
    """The outbox columns a status callback (or a look-up) sets, from Exotel's fields."""
    units = fields.get("SmsUnits", "").strip()
    return {
        "delivery_status": status or None,
        "detailed_status": (fields.get("DetailedStatus") or "")[:128] or None,
        "detailed_status_code": (fields.get("DetailedStatusCode") or "")[:16] or None,
        "sms_units": int(units) if units.isascii() and units.isdigit() and len(units) < 6 else None,
        "date_sent": (fields.get("DateSent") or "")[:64] or None,
    }


@dataclass(slots=True)
class OutboxRow:
    id: int
    message_sid: str | None
    to_number: str
    sender: str | None
    body: str
    template_id: str | None
    status: str
    attempts: int
    exotel_sid: str | None
    last_error: str | None
    parts: int | None
    delivery_status: str | None
    detailed_status_code: str | None
    sms_units: int | None


_COLUMNS = [outbox.c[name] for name in OutboxRow.__slots__]


@dataclass(frozen=True, slots=True)
class Sent:
    """One SMS Exotel accepted: the outbox row, Exotel's SmsSid, the DLT template sent."""

    row_id: int
    exotel_sid: str
    template_id: str | None


def _row(record: Any) -> OutboxRow:
    return OutboxRow(*record)


class Outbox:
    """Outgoing SMS in the database."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def enqueue(
        self,
        to: str,
        body: str,
        *,
        message_sid: str | None = None,
        sender: str | None = None,
        template_id: str | None = None,
        parts: int | None = None,
        author: str | None = None,
    ) -> int | None:
        """Store an SMS to send; ``None`` when one for ``message_sid`` is already stored.

        ``author``: who sent it by hand from the inbox (``None``: exosms itself)."""
        now = time.time()
        values = {
            "message_sid": message_sid,
            "to_number": to,
            "sender": sender,
            "body": body,
            "template_id": template_id,
            "status": PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
            "parts": parts,
            "author": author,
        }
        return await self._insert(values)

    async def _insert(self, values: dict[str, Any]) -> int | None:
        """The INSERT of :meth:`enqueue`: the new row's id, ``None`` on a repeated SmsSid."""
        try:
            async with self.engine.begin() as conn:
                result = await conn.execute(insert(outbox).values(**values))
                return int(result.inserted_primary_key[0])  # type: ignore[index]
        except IntegrityError:
            return None  # a webhook retry: this SMS's reply is already queued
        except SQLAlchemyError as error:
            raise StoreUnavailable(reason(error)) from error

    async def lease_due(self, limit: int, lease: float) -> list[OutboxRow]:
        """Take up to ``limit`` rows that are due, marking them ``sending`` for ``lease`` s."""
        now = time.time()
        # The first ``limit`` pending rows and the first ``limit`` whose lease ran out, each
        # read in the due index's order and locked (PostgreSQL; SQLite has one writer
        # anyway), then the first ``limit`` of the two. One query with ``OR`` sorted every
        # due row to take 50: 4.8 ms with 9,000 waiting, against 1.5 (bench/README.md).
        pending, expired = (
            select(outbox.c.id, outbox.c.next_attempt_at)
            .where(which)
            .order_by(outbox.c.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .cte(name)
            for name, which in (
                ("pending", (outbox.c.status == PENDING) & (outbox.c.next_attempt_at <= now)),
                ("expired", (outbox.c.status == SENDING) & (outbox.c.lease_until < now)),
            )
        )
        both = union_all(select(pending), select(expired)).subquery("due")
        due = select(both.c.id).order_by(both.c.next_attempt_at).limit(limit)
        # One statement, so taking the rows is atomic on both databases.
        take = (
            update(outbox)
            .where(outbox.c.id.in_(due.scalar_subquery()))
            .values(status=SENDING, lease_until=now + lease, attempts=outbox.c.attempts + 1)
            .returning(*_COLUMNS)
        )
        with sql_errors():
            async with self.engine.begin() as conn:
                rows = [_row(r) for r in (await conn.execute(take)).all()]
        return sorted(rows, key=lambda r: r.id)

    async def lease(self, row_id: int, lease: float) -> OutboxRow | None:
        """Take one pending row (``exosms send`` sending what it just queued); ``None`` when
        a worker took it first."""
        take = (
            update(outbox)
            .where((outbox.c.id == row_id) & (outbox.c.status == PENDING))
            .values(status=SENDING, lease_until=time.time() + lease, attempts=outbox.c.attempts + 1)
            .returning(*_COLUMNS)
        )
        with sql_errors():
            async with self.engine.begin() as conn:
                found = (await conn.execute(take)).first()
        return None if found is None else _row(found)

    async def get(self, row_id: int) -> OutboxRow | None:
        with sql_errors():
            async with self.engine.connect() as conn:
                found = (await conn.execute(select(*_COLUMNS).where(outbox.c.id == row_id))).first()
        return None if found is None else _row(found)

    async def _set(self, row_id: int, *, only_if: tuple[str, ...] = (), **values: Any) -> bool:
        """Update one row (``only_if``: while its status is one of these); True if it did."""
        where = outbox.c.id == row_id
        if only_if:
            where = where & outbox.c.status.in_(only_if)
        with sql_errors():
            async with self.engine.begin() as conn:
                done = await conn.execute(update(outbox).where(where).values(**values))
        return bool(done.rowcount)

    async def mark_sent(self, row_id: int, exotel_sid: str, template_id: str | None) -> None:
        await self.mark_all_sent([Sent(row_id, exotel_sid, template_id)])

    async def mark_all_sent(self, sent: Sequence[Sent]) -> None:
        """Rows Exotel accepted, with its SmsSid and the template sent: one transaction."""
        if not sent:
            return
        now = time.time()
        many = [{"row": s.row_id, "sid": s.exotel_sid, "template": s.template_id} for s in sent]
        change = (
            update(outbox)
            .where(outbox.c.id == bindparam("row"))
            .values(
                status=SENT,
                exotel_sid=bindparam("sid"),
                sent_at=now,
                lease_until=None,
                template_id=bindparam("template"),
                last_error=None,
            )
        )
        with sql_errors():
            async with self.engine.begin() as conn:
                await conn.execute(change, many)

    async def mark_retry(self, row_id: int, error: str, at: float) -> None:
        await self._set(
            row_id,
            only_if=(SENDING, POSTING),
            status=PENDING,
            last_error=error,
            next_attempt_at=at,
            lease_until=None,
        )

    async def mark_failed(self, row_id: int, error: str) -> None:
        await self._set(
            row_id, only_if=(SENDING, POSTING), status=FAILED, last_error=error, lease_until=None
        )

    async def mark_posting(self, row_ids: Sequence[int]) -> None:
        """Durably, before their POSTs (one transaction): from now on a crash leaves these
        rows ``unknown``."""
        change = update(outbox).where(outbox.c.id.in_(row_ids)).values(status=POSTING)
        with sql_errors():
            async with self.engine.begin() as conn:
                await conn.execute(change)

    async def mark_unknown(self, row_id: int, error: str, wait_until: float) -> bool:
        """The POST's answer was lost. False when its status callback already settled it."""
        return await self._set(
            row_id,
            only_if=(POSTING,),
            status=UNKNOWN,
            last_error=error,
            next_attempt_at=wait_until,
            lease_until=None,
        )

    async def sweep(self, now: float, unknown_wait: float, resend: bool) -> tuple[int, int]:
        """Posted rows whose worker died become ``unknown``; ``unknown`` rows no callback
        settled in time are held (or, with ``resend``, due again). Returns both counts."""
        dead = (
            update(outbox)
            .where((outbox.c.status == POSTING) & (outbox.c.lease_until < now))
            .values(
                status=UNKNOWN,
                next_attempt_at=now + unknown_wait,
                lease_until=None,
                last_error=DIED_NOTE,
            )
        )
        settle = (
            update(outbox)
            .where((outbox.c.status == UNKNOWN) & (outbox.c.next_attempt_at <= now))
            .values(
                status=PENDING if resend else HELD,
                next_attempt_at=now,
                last_error=func.coalesce(outbox.c.last_error, "")
                + (RESENT_NOTE if resend else HELD_NOTE),
            )
        )
        with sql_errors():
            async with self.engine.begin() as conn:
                died = (await conn.execute(dead)).rowcount
                settled = (await conn.execute(settle)).rowcount
        return int(died or 0), int(settled or 0)

    async def decide(self, row_id: int, resend: bool, by: str = "cli") -> OutboxRow | None:
        """A person's choice for a held, unknown or failed row: send it again, or give up;
        ``by``: who chose (kept with the time). Returns the row as it now is; ``None`` when
        no such row may be decided on."""
        allowed = (HELD, UNKNOWN, FAILED) if resend else (HELD, UNKNOWN)
        now = time.time()
        values: dict[str, Any] = (
            {"status": PENDING, "next_attempt_at": now, "lease_until": None}
            if resend
            else {
                "status": FAILED,
                "last_error": func.coalesce(outbox.c.last_error, "") + "; given up by a person",
            }
        )
        values.update(decided_by=by[:64], decided_at=now)
        query = (
            update(outbox)
            .where((outbox.c.id == row_id) & outbox.c.status.in_(allowed))
            .values(**values)
            .returning(*_COLUMNS)
        )
        with sql_errors():
            async with self.engine.begin() as conn:
                found = (await conn.execute(query)).first()
        return None if found is None else _row(found)

    async def unsettled(
        self, sent_before: float, checked_before: float, limit: int
    ) -> list[OutboxRow]:
        """Sent rows with no final delivery status, for the reconciler to ask Exotel about."""
        query = (
            select(*_COLUMNS)
            .where(
                (outbox.c.status == SENT)
                & outbox.c.exotel_sid.is_not(None)
                & (outbox.c.sent_at < sent_before)
                & (
                    outbox.c.delivery_status.is_(None)
                    | outbox.c.delivery_status.not_in(FINAL_DELIVERY)
                )
                & (outbox.c.checked_at.is_(None) | (outbox.c.checked_at < checked_before))
            )
            .order_by(outbox.c.sent_at)
            .limit(limit)
        )
        with sql_errors():
            async with self.engine.connect() as conn:
                return [_row(r) for r in (await conn.execute(query)).all()]

    async def mark_checked(self, row_id: int) -> None:
        await self._set(row_id, checked_at=time.time())

    async def record_status(
        self, fields: Mapping[str, str], row_id: int | None = None
    ) -> int | None:
        """Record one delivery status for the row ``row_id`` (from a verified CustomField) or
        the row sent as ``SmsSid``; returns the row, if known. A status only moves forward: a
        repeated, late or replayed callback changes nothing. A row whose send was in doubt
        (``posting``, ``unknown``, ``held``) is settled as sent."""
        sid = fields.get("SmsSid", "")
        status = fields.get("Status", "").strip().lower().replace("-", "_")[:32]
        with sql_errors():
            async with self.engine.begin() as conn:
                if row_id is None and sid:
                    row_id = (
                        await conn.execute(select(outbox.c.id).where(outbox.c.exotel_sid == sid))
                    ).scalar()
                current = None
                if row_id is not None:
                    current = (
                        await conn.execute(
                            select(outbox.c.status, outbox.c.delivery_status).where(
                                outbox.c.id == row_id
                            )
                        )
                    ).first()
                    if current is None:
                        row_id = None
                if current is not None and delivery_rank(status) > delivery_rank(current[1]):
                    values = status_values(fields, status)
                    if current[0] in (POSTING, UNKNOWN, HELD):
                        values.update(status=SENT, sent_at=time.time(), lease_until=None)
                        if sid:
                            values["exotel_sid"] = sid[:128]
                    await conn.execute(update(outbox).where(outbox.c.id == row_id).values(**values))
                await conn.execute(
                    insert(delivery_events).values(
                        exotel_sid=sid[:128] or None,
                        outbox_id=row_id,
                        status=status or None,
                        payload=json.dumps(dict(fields), ensure_ascii=False),
                        received_at=time.time(),
                    )
                )
        return None if row_id is None else int(row_id)

    async def recent(self, limit: int) -> list[OutboxRow]:
        query = select(*_COLUMNS).order_by(outbox.c.id.desc()).limit(limit)
        with sql_errors():
            async with self.engine.connect() as conn:
                return [_row(r) for r in (await conn.execute(query)).all()]

    async def unknown_events(self) -> list[dict[str, Any]]:
        query = select(delivery_events.c.payload).where(delivery_events.c.outbox_id.is_(None))
        async with self.engine.connect() as conn:
            return [json.loads(p) for p in (await conn.execute(query)).scalars()]
