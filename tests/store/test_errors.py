"""A database failure reaches the caller as StoreUnavailable with the driver's one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from exosms.store import StoreUnavailable, open_database
from exosms.store.textsql import fetch_all

pytestmark = pytest.mark.anyio


async def test_a_failed_query_says_why_in_one_line_without_sqlalchemys_link(
    tmp_path: Path,
) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'e.db'}")
    await db.open()
    try:
        with pytest.raises(StoreUnavailable) as raised:
            await fetch_all(db.inbox.engine, "SELECT * FROM no_such_table")
    finally:
        await db.close()
    reason = str(raised.value)
    assert "no such table: no_such_table" in reason
    assert "\n" not in reason and "sqlalche.me" not in reason
