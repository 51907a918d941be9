"""Reads shared by every store, written once with SQLAlchemy Core over an async engine."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from exosms.store.base import StoredMessage, StoreUnavailable
from exosms.store.schema import MESSAGE_COLUMNS, messages

_SELECT_MESSAGES = select(*(messages.c[name] for name in MESSAGE_COLUMNS))


def to_stored(row: Sequence[Any]) -> StoredMessage:
    return StoredMessage(*row)


class SqlReader:
    """Read queries over an async SQLAlchemy engine (aiosqlite or asyncpg)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def lookup(self, sms_sid: str) -> StoredMessage | None:
        query = _SELECT_MESSAGES.where(messages.c.sms_sid == sms_sid)
        try:
            async with self.engine.connect() as conn:
                row = (await conn.execute(query)).first()
        except SQLAlchemyError as error:
            raise StoreUnavailable(str(error.__cause__ or error)) from error
        return to_stored(row) if row is not None else None

    async def recent(self, limit: int) -> list[StoredMessage]:
        query = _SELECT_MESSAGES.order_by(messages.c.id.desc()).limit(limit)
        try:
            async with self.engine.connect() as conn:
                rows = (await conn.execute(query)).all()
        except SQLAlchemyError as error:
            raise StoreUnavailable(str(error.__cause__ or error)) from error
        return [to_stored(row) for row in rows]

    async def ping(self) -> None:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except (SQLAlchemyError, OSError) as error:
            raise StoreUnavailable(str(error.__cause__ or error)) from error
