"""A throwaway PostgreSQL database for one test session.

Under CI=true the PostgreSQL tests must run: an unreachable server fails them. Elsewhere they
skip with one line. $EXOSMS_TEST_DATABASE_URL overrides the server's address.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

T = TypeVar("T")

ADMIN_URL = os.environ.get("EXOSMS_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


def in_thread(function: Callable[..., T], *args: Any) -> T:
    """Run ``function`` in a fresh thread: it may call asyncio.run even from async tests."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(function, *args).result()


def _admin(sql: str) -> None:
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(ADMIN_URL, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    in_thread(asyncio.run, run())


def create_database() -> str:
    """Create a fresh database; return its URL. Skips (or fails under CI) when unreachable."""
    name = f"exosms_test_{uuid.uuid4().hex[:12]}"
    import asyncpg

    try:
        _admin(f'CREATE DATABASE "{name}"')
    except (OSError, TimeoutError, asyncpg.PostgresError) as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required under CI=true: {ADMIN_URL}: {error}")
        pytest.skip(f"no PostgreSQL at {ADMIN_URL} ({type(error).__name__})")
    base = ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{name}"


def drop_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
