"""Reads shared by every store, written once with SQLAlchemy Core over an async engine."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from exosms.dlt import Template
from exosms.store.base import OptOut, OutboxWrite, StoredMessage, StoreUnavailable
from exosms.store.errors import reason, sql_errors
from exosms.store.events import EventStore
from exosms.store.inbox import InboxQueries
from exosms.store.logins import Logins
from exosms.store.outbox import Outbox
from exosms.store.schema import (
    MESSAGE_COLUMNS,
    conversations,
    dlt_templates,
    messages,
    optouts,
    sessions,
)


def _template_row(template: Template) -> dict[str, Any]:
    return {
        "template_id": template.template_id,
        "entity_id": template.entity_id,
        "name": template.name,
        "headers": json.dumps(list(template.headers)),
        "category": template.category,
        "content": template.content,
        "status": template.status,
        "url_whitelist": json.dumps(list(template.url_whitelist)),
        "cbn_whitelist": json.dumps(list(template.cbn_whitelist)),
    }


def _template_from_row(row: Any) -> Template:
    return Template(
        template_id=row.template_id,
        content=row.content,
        entity_id=row.entity_id,
        name=row.name,
        headers=tuple(json.loads(row.headers)),
        category=row.category,
        status=row.status,
        url_whitelist=tuple(json.loads(row.url_whitelist)),
        cbn_whitelist=tuple(json.loads(row.cbn_whitelist)),
    )


_SELECT_MESSAGES = select(*(messages.c[name] for name in MESSAGE_COLUMNS))


def to_stored(row: Sequence[Any]) -> StoredMessage:
    return StoredMessage(*row)


class SqlReader:
    """Read queries over an async SQLAlchemy engine (aiosqlite or asyncpg)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def lookup(self, sms_sid: str) -> StoredMessage | None:
        query = _SELECT_MESSAGES.where(messages.c.sms_sid == sms_sid)
        with sql_errors():
            async with self.engine.connect() as conn:
                row = (await conn.execute(query)).first()
        return to_stored(row) if row is not None else None

    async def recent(self, limit: int) -> list[StoredMessage]:
        query = _SELECT_MESSAGES.order_by(messages.c.id.desc()).limit(limit)
        with sql_errors():
            async with self.engine.connect() as conn:
                rows = (await conn.execute(query)).all()
        return [to_stored(row) for row in rows]

    async def load_session(self, sender: str, recipient: str) -> dict[str, object] | None:
        query = select(sessions.c.data).where(
            sessions.c.sender == sender,
            sessions.c.recipient == recipient,
            sessions.c.expires_at > time.time(),
        )
        with sql_errors():
            async with self.engine.connect() as conn:
                data = (await conn.execute(query)).scalar()
        if data is None:
            return None
        loaded = json.loads(data)
        return loaded if isinstance(loaded, dict) and loaded else None

    async def save_templates(self, templates: Sequence[Template]) -> tuple[int, int]:
        inserted = updated = 0
        now = time.time()
        with sql_errors():
            async with self.engine.begin() as conn:
                existing = {
                    row.template_id: row
                    for row in (await conn.execute(select(dlt_templates))).all()
                }
                for template in templates:
                    row = _template_row(template)
                    old = existing.get(template.template_id)
                    if old is None:
                        await conn.execute(insert(dlt_templates).values(**row, updated_at=now))
                        existing[template.template_id] = row  # type: ignore[assignment]
                        inserted += 1
                    elif any(getattr(old, k, None) != row[k] for k in row):
                        await conn.execute(
                            update(dlt_templates)
                            .where(dlt_templates.c.template_id == template.template_id)
                            .values(**row, updated_at=now)
                        )
                        updated += 1
        return inserted, updated

    async def load_templates(self) -> list[Template]:
        query = select(dlt_templates).order_by(dlt_templates.c.template_id)
        with sql_errors():
            async with self.engine.connect() as conn:
                rows = (await conn.execute(query)).all()
        return [_template_from_row(row) for row in rows]

    async def templates_version(self) -> str:
        query = select(func.count(), func.max(dlt_templates.c.updated_at))
        with sql_errors():
            async with self.engine.connect() as conn:
                count, latest = (await conn.execute(query)).one()
        return f"{count}:{latest}"

    async def list_optouts(self) -> list[OptOut]:
        query = select(optouts).order_by(optouts.c.created_at.desc())
        with sql_errors():
            async with self.engine.connect() as conn:
                rows = (await conn.execute(query)).all()
        return [OptOut(r.sender, r.recipient, r.created_at, r.source) for r in rows]

    async def set_optout(
        self, sender: str, recipient: str, opted_out: bool, source: str = "cli"
    ) -> bool:
        where = (optouts.c.sender == sender) & (optouts.c.recipient == recipient)
        with sql_errors():
            async with self.engine.begin() as conn:
                exists = (await conn.execute(select(optouts.c.sender).where(where))).first()
                if opted_out and exists is None:
                    await conn.execute(
                        insert(optouts).values(
                            sender=sender,
                            recipient=recipient,
                            created_at=time.time(),
                            source=source,
                        )
                    )
                    return True
                if not opted_out and exists is not None:
                    await conn.execute(delete(optouts).where(where))
                    return True
        return False

    async def record_late_reply(
        self, sms_sid: str, reply: str, queued: OutboxWrite | None = None
    ) -> None:
        query = update(messages).where(messages.c.sms_sid == sms_sid).values(late_reply=reply)
        with sql_errors():
            async with self.engine.begin() as conn:
                await conn.execute(query)
                if queued is not None:
                    await conn.execute(
                        text(
                            "INSERT INTO outbox (message_sid, to_number, sender, body,"
                            " template_id, status, attempts, next_attempt_at, created_at, parts)"
                            " VALUES (:sid, :to, :sender, :body, :template, 'pending', 0, :now,"
                            " :now, :parts) ON CONFLICT (message_sid) DO NOTHING"
                        ),
                        {
                            "sid": sms_sid,
                            "to": queued.to_number,
                            "sender": queued.sender,
                            "body": queued.body,
                            "template": queued.template_id,
                            "now": time.time(),
                            "parts": queued.parts,
                        },
                    )

    async def count_before(self, before: float) -> int:
        query = select(func.count()).where(messages.c.received_at < before)
        with sql_errors():
            async with self.engine.connect() as conn:
                return int((await conn.execute(query)).scalar_one())

    async def prune(self, before: float, batch: int) -> int:
        """Delete messages received before ``before``, ``batch`` rows per transaction."""
        total = 0
        with sql_errors():
            while True:
                oldest = (
                    select(messages.c.id)
                    .where(messages.c.received_at < before)
                    .order_by(messages.c.id)
                    .limit(batch)
                )
                async with self.engine.begin() as conn:
                    ids = list((await conn.execute(oldest)).scalars())
                    if ids:
                        gone = (
                            select(messages.c.sender, func.count())
                            .where(messages.c.id.in_(ids))
                            .group_by(messages.c.sender)
                        )
                        counts = (await conn.execute(gone)).all()
                        await conn.execute(delete(messages).where(messages.c.id.in_(ids)))
                        for sender, count in counts:
                            await conn.execute(
                                update(conversations)
                                .where(conversations.c.sender == sender)
                                .values(message_count=conversations.c.message_count - count)
                            )
                total += len(ids)
                if len(ids) < batch:
                    break
                await asyncio.sleep(0.01)  # short transactions, and room for the server's writes
            async with self.engine.begin() as conn:
                await conn.execute(delete(sessions).where(sessions.c.expires_at < time.time()))
                # A conversation whose every message was pruned goes too.
                await conn.execute(
                    delete(conversations).where(
                        ~select(messages.c.id)
                        .where(messages.c.sender == conversations.c.sender)
                        .exists()
                    )
                )
        return total

    async def ping(self) -> None:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except (SQLAlchemyError, OSError) as error:
            raise StoreUnavailable(reason(error)) from error


class SqlBackedStore:
    """The store methods every backend answers with :class:`SqlReader` (not the hot path)."""

    _reader: SqlReader
    _inbox: InboxQueries | None = None
    _logins: Logins | None = None
    _events: EventStore | None = None

    @property
    def outbox(self) -> Outbox:
        return Outbox(self._reader.engine)

    @property
    def inbox(self) -> InboxQueries:
        if self._inbox is None:
            self._inbox = InboxQueries(self._reader.engine)
        return self._inbox

    @property
    def events(self) -> EventStore:
        if self._events is None:
            self._events = EventStore(self._reader.engine)
        return self._events

    @property
    def logins(self) -> Logins:
        if self._logins is None:
            self._logins = Logins(self._reader.engine)
        return self._logins

    async def lookup(self, sms_sid: str) -> StoredMessage | None:
        return await self._reader.lookup(sms_sid)

    async def recent(self, limit: int) -> list[StoredMessage]:
        return await self._reader.recent(limit)

    async def ping(self) -> None:
        await self._reader.ping()

    async def load_session(self, sender: str, recipient: str) -> dict[str, object] | None:
        return await self._reader.load_session(sender, recipient)

    async def list_optouts(self) -> list[OptOut]:
        return await self._reader.list_optouts()

    async def set_optout(
        self, sender: str, recipient: str, opted_out: bool, source: str = "cli"
    ) -> bool:
        return await self._reader.set_optout(sender, recipient, opted_out, source)

    async def save_templates(self, templates: Sequence[Template]) -> tuple[int, int]:
        return await self._reader.save_templates(templates)

    async def load_templates(self) -> list[Template]:
        return await self._reader.load_templates()

    async def templates_version(self) -> str:
        return await self._reader.templates_version()

    async def count_before(self, before: float) -> int:
        return await self._reader.count_before(before)

    async def prune(self, before: float, batch: int = 1000) -> int:
        await self.inbox.refresh()  # conversations count every message before some go
        pruned = await self._reader.prune(before, batch)
        await self.events.prune(before)  # events go with their messages
        return pruned

    async def record_late_reply(
        self, sms_sid: str, text: str, outbox: OutboxWrite | None = None
    ) -> None:
        await self._reader.record_late_reply(sms_sid, text, outbox)
