"""SQLite has one writer thread per process for the hot path (group commit), and the cold
paths (outbox, opt-outs, login attempts) write through the aiosqlite engine beside it: both
take SQLite's one write lock, waiting for each other up to busy_timeout. This is the test of
that design under contention: every write lands, none fails with "database is locked"."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from exosms.result import Result
from exosms.store import Completion, NewMessage, open_database
from exosms.store.migrate import upgrade_async

pytestmark = pytest.mark.anyio


def _message(n: int) -> NewMessage:
    sid = f"w{n}"
    return NewMessage(sid, "+919052161119", "9052161119", "56070", "56070", f"hi {n}",
                      f"SmsSid={sid}", "", None, time.time(), "GET")  # fmt: skip


async def test_cold_path_writes_beside_the_writer_thread_all_land(tmp_path: Path) -> None:
    path = tmp_path / "writers.db"
    url = f"sqlite:///{path}"
    await upgrade_async(url)
    db = open_database(url)
    await db.open()
    try:

        async def hot(n: int) -> None:
            await db.store.claim(_message(n), "me", time.time() + 5)
            await db.store.complete(
                Completion(f"w{n}", Result(f"reply {n}", "echo", "replied", 1.0), time.time())
            )

        async def cold(n: int) -> None:
            await db.outbox.enqueue(f"+9190000{n:05d}", f"sent by hand {n}")
            await db.store.set_optout(f"+9191{n:08d}", "*", True)
            assert await db.logins.reserve_login(f"10.0.{n // 250}.{n % 250}", 5, 900) == 0.0

        await asyncio.gather(*(hot(n) for n in range(400)), *(cold(n) for n in range(150)))
    finally:
        await db.close()
    with sqlite3.connect(path) as conn:
        done = conn.execute("SELECT COUNT(*) FROM messages WHERE state = 'done'").fetchone()[0]
        queued = conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        opted = conn.execute("SELECT COUNT(*) FROM optouts").fetchone()[0]
        attempts = conn.execute("SELECT COUNT(*) FROM login_attempts").fetchone()[0]
    assert (done, queued, opted, attempts) == (400, 150, 150, 150)
