from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from exosms.store import Store, open_store
from exosms.store.migrate import upgrade_async


@pytest.fixture(params=["sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """Every store implementation, migrated and open; the contract suite runs on each."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    await upgrade_async(url)
    opened = open_store(url)
    await opened.open()
    yield opened
    await opened.close()
