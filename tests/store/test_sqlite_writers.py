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


async def test_a_callback_waits_for_the_disk_only_when_nothing_else_could_make_it_good(
    tmp_path: Path,
) -> None:
    from exosms.store.sqlite import SqliteStore

    url = f"sqlite:///{tmp_path / 'callbacks.db'}"
    await upgrade_async(url)
    db = open_database(url, indexing=False)
    await db.open()
    try:
        assert isinstance(db.store, SqliteStore)
        writer = db.store._writer
        sent_id, doubt_id = [await db.outbox.enqueue(f"+91905216150{n}", "hi") for n in range(2)]
        assert sent_id is not None and doubt_id is not None
        await db.outbox.lease_due(10, 60)
        await db.outbox.mark_posting([sent_id, doubt_id])
        await db.outbox.mark_sent(sent_id, "exo-sent", None)

        async def writes(fields: dict[str, str], row_id: int | None) -> int:
            before = writer.writes
            await db.outbox.record_status(fields, row_id)
            return writer.writes - before

        # A sent SMS: its status rides the next fsync (the reconciler would look it up).
        assert await writes({"SmsSid": "exo-sent", "Status": "sent"}, sent_id) == 1
        # It settles a send in doubt, or names no SMS: a second, durable write.
        assert await writes({"SmsSid": "exo-doubt", "Status": "sent"}, doubt_id) == 2
        assert await writes({"SmsSid": "nobody", "Status": "sent"}, None) == 2
        rows = {r.id: r for r in await db.outbox.recent(10)}
        assert (rows[doubt_id].status, rows[doubt_id].exotel_sid) == ("sent", "exo-doubt")
        assert rows[sent_id].delivery_status == "sent"
    finally:
        await db.close()


async def test_writes_of_one_turn_of_the_loop_reach_the_writer_together(tmp_path: Path) -> None:
    from exosms.store.base import StoreUnavailable
    from exosms.store.sqlite import MAX_BATCH, GroupCommitWriter

    writer = GroupCommitWriter(str(tmp_path / "turns.db"))
    writer.start()

    def insert(conn: sqlite3.Connection, n: int) -> int:
        conn.execute("CREATE TABLE IF NOT EXISTS t (n INTEGER)")
        return int(conn.execute("INSERT INTO t VALUES (?)", (n,)).lastrowid or 0)

    # 600 writes submitted in one turn of the loop: handed over together, in two
    # transactions (at most MAX_BATCH writes each).
    futures = [writer.submit(insert, n) for n in range(MAX_BATCH + 88)]
    assert sorted(await asyncio.gather(*futures)) == list(range(1, MAX_BATCH + 89))
    assert (writer.batches, writer.writes) == (2, MAX_BATCH + 88)
    # A write posted before stop() lands; one whose turn ends after the writer stopped
    # fails with a reason: it never hangs.
    late = writer.submit(insert, -1)
    writer.post(insert, -2)
    writer.stop()
    with pytest.raises(StoreUnavailable, match="writer stopped"):
        await late
    with sqlite3.connect(tmp_path / "turns.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM t").fetchone()[0] == MAX_BATCH + 89
        assert conn.execute("SELECT COUNT(*) FROM t WHERE n < 0").fetchone()[0] == 1
