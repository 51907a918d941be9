from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from exosms.store import open_store
from exosms.store.migrate import upgrade_async
from exosms.store.opening import OpenedStore

TABLES = (
    "messages",
    "sessions",
    "optouts",
    "dlt_templates",
    "outbox",
    "delivery_events",
    "conversations",
    "web_sessions",
    "claim_owners",
    "login_attempts",
    "events",
    "forwards",
)


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[OpenedStore]:
    """Every store implementation, migrated, empty and open: the contract suite runs on each."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
        await upgrade_async(url)
    else:
        url = request.getfixturevalue("pg_database")
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f"TRUNCATE {', '.join(TABLES)}")
        finally:
            await conn.close()
    opened = open_store(url)
    await opened.open()
    yield opened
    await opened.close()
