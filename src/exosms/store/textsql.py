"""Plain SQL text over an async SQLAlchemy engine, with the one error translation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from exosms.store.errors import sql_errors


async def fetch_all(engine: AsyncEngine, sql: str, **params: Any) -> Sequence[Any]:
    """The rows of one query (``:name`` parameters)."""
    with sql_errors():
        async with engine.connect() as conn:
            return (await conn.execute(text(sql), params)).all()


async def execute(engine: AsyncEngine, sql: str, **params: Any) -> int:
    """Run one statement in its own transaction; the number of rows it touched."""
    with sql_errors():
        async with engine.begin() as conn:
            return (await conn.execute(text(sql), params)).rowcount
