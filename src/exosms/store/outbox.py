"""The outbox: every SMS sent through Exotel's API is stored first, then sent once.

Written with SQLAlchemy Core for both databases. Due rows are leased (``sending`` with a
``lease_until``); on PostgreSQL with ``FOR UPDATE SKIP LOCKED``, so several server
processes share the work without sending a row twice. A row whose lease ran out (the process
died mid-send) is due again; its id travels in Exotel's ``CustomField``, so a resend after
an ambiguous failure can be recognised in the status callbacks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, or_, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from exosms.store.base import StoreUnavailable
from exosms.store.schema import delivery_events, outbox

PENDING, SENDING, SENT, FAILED = "pending", "sending", "sent", "failed"


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
    ) -> int | None:
        """Store an SMS to send; ``None`` when one for ``message_sid`` is already stored."""
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
        }
        try:
            async with self.engine.begin() as conn:
                result = await conn.execute(insert(outbox).values(**values))
                return int(result.inserted_primary_key[0])  # type: ignore[index]
        except IntegrityError:
            return None  # a webhook retry: this SMS's reply is already queued
        except SQLAlchemyError as error:
            raise StoreUnavailable(str(error.__cause__ or error)) from error

    async def lease_due(self, limit: int, lease: float) -> list[OutboxRow]:
        """Take up to ``limit`` rows that are due, marking them ``sending`` for ``lease`` s."""
        now = time.time()
        due = (
            select(outbox.c.id)
            .where(
                or_(
                    (outbox.c.status == PENDING) & (outbox.c.next_attempt_at <= now),
                    (outbox.c.status == SENDING) & (outbox.c.lease_until < now),
                )
            )
            .order_by(outbox.c.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)  # PostgreSQL; SQLite has one writer anyway
        )
        # One statement, so taking the rows is atomic on both databases.
        take = (
            update(outbox)
            .where(outbox.c.id.in_(due.scalar_subquery()))
            .values(status=SENDING, lease_until=now + lease, attempts=outbox.c.attempts + 1)
            .returning(*_COLUMNS)
        )
        try:
            async with self.engine.begin() as conn:
                rows = [_row(r) for r in (await conn.execute(take)).all()]
        except SQLAlchemyError as error:
            raise StoreUnavailable(str(error.__cause__ or error)) from error
        return sorted(rows, key=lambda r: r.id)

    async def _set(self, row_id: int, **values: Any) -> None:
        try:
            async with self.engine.begin() as conn:
                await conn.execute(update(outbox).where(outbox.c.id == row_id).values(**values))
        except SQLAlchemyError as error:
            raise StoreUnavailable(str(error.__cause__ or error)) from error

    async def mark_sent(self, row_id: int, exotel_sid: str, template_id: str | None) -> None:
        await self._set(
            row_id,
            status=SENT,
            exotel_sid=exotel_sid,
            sent_at=time.time(),
            lease_until=None,
            template_id=template_id,
            last_error=None,
        )

    async def mark_retry(self, row_id: int, error: str, at: float) -> None:
        await self._set(
            row_id, status=PENDING, last_error=error, next_attempt_at=at, lease_until=None
        )

    async def mark_failed(self, row_id: int, error: str) -> None:
        await self._set(row_id, status=FAILED, last_error=error, lease_until=None)

    async def record_status(self, fields: Mapping[str, str]) -> int | None:
        """Record one status callback; returns the outbox row it belongs to, if known."""
        sid = fields.get("SmsSid", "")
        status = fields.get("Status", "").replace("-", "_")  # failed-dnd and failed_dnd
        custom = fields.get("CustomField", "")
        try:
            async with self.engine.begin() as conn:
                row_id = (
                    await conn.execute(select(outbox.c.id).where(outbox.c.exotel_sid == sid))
                ).scalar()
                if row_id is None and custom.startswith("exosms-") and custom[7:].isdigit():
                    row_id = int(custom[7:])  # a resend Exotel knows under another SmsSid
                    exists = await conn.execute(select(outbox.c.id).where(outbox.c.id == row_id))
                    row_id = row_id if exists.scalar() is not None else None
                if row_id is not None:
                    units = fields.get("SmsUnits", "")
                    await conn.execute(
                        update(outbox)
                        .where(outbox.c.id == row_id)
                        .values(
                            delivery_status=status or None,
                            detailed_status=fields.get("DetailedStatus") or None,
                            detailed_status_code=fields.get("DetailedStatusCode") or None,
                            sms_units=int(units) if units.isdigit() else None,
                            date_sent=fields.get("DateSent") or None,
                        )
                    )
                await conn.execute(
                    insert(delivery_events).values(
                        exotel_sid=sid or None,
                        outbox_id=row_id,
                        status=status or None,
                        payload=json.dumps(dict(fields), ensure_ascii=False),
                        received_at=time.time(),
                    )
                )
        except SQLAlchemyError as error:
            raise StoreUnavailable(str(error.__cause__ or error)) from error
        return None if row_id is None else int(row_id)

    async def recent(self, limit: int) -> list[OutboxRow]:
        query = select(*_COLUMNS).order_by(outbox.c.id.desc()).limit(limit)
        try:
            async with self.engine.connect() as conn:
                return [_row(r) for r in (await conn.execute(query)).all()]
        except SQLAlchemyError as error:
            raise StoreUnavailable(str(error.__cause__ or error)) from error

    async def unknown_events(self) -> list[dict[str, Any]]:
        query = select(delivery_events.c.payload).where(delivery_events.c.outbox_id.is_(None))
        async with self.engine.connect() as conn:
            return [json.loads(p) for p in (await conn.execute(query)).scalars()]
