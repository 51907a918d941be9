"""Migration 0008 on a SQLite file that reused ids (a prune of the newest rows, before 0008):
the full-text index and conversations are repaired and ids never come back."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from exosms.store.migrate import upgrade
from exosms.store.sqlite import index_inbox

_INSERT = (
    "INSERT INTO messages (sms_sid, sender, sender_raw, recipient, recipient_raw, body, query,"
    " date_raw, received_at, method, state) VALUES (?, ?, ?, '56070', '56070', ?, '', '', ?,"
    " 'GET', 'done')"
)


def test_a_database_that_reused_ids_is_repaired(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    upgrade(f"sqlite:///{path}", "0007")
    with sqlite3.connect(path, isolation_level=None) as conn:
        for n in range(30):
            conn.execute(_INSERT, (f"s{n}", "+919052161119", "9052161119", f"old{n}", 1.0 + n))
        index_inbox(conn)
        conn.execute("DELETE FROM messages")  # the prune of every row, the newest too
        conn.execute(_INSERT, ("again", "+919876543210", "9876543210", "umbrella", 99.0))
        reused = conn.execute("SELECT id FROM messages WHERE sms_sid = 'again'").fetchone()[0]
        assert reused == 1  # the old behaviour this migration repairs
        index_inbox(conn)  # skips id 1: below its mark
        found = conn.execute("SELECT rowid FROM messages_fts WHERE messages_fts MATCH 'umbrella'")
        assert found.fetchall() == []

    upgrade(f"sqlite:///{path}")

    with sqlite3.connect(path, isolation_level=None) as conn:
        conn.execute("INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)")
        found = conn.execute("SELECT rowid FROM messages_fts WHERE messages_fts MATCH 'umbrella'")
        assert found.fetchall() == [(1,)]
        assert conn.execute("SELECT sender, message_count FROM conversations").fetchall() == [
            ("+919876543210", 1)
        ]
        conn.execute(_INSERT, ("newer", "+919876543210", "9876543210", "raincoat", 100.0))
        newer = conn.execute("SELECT id FROM messages WHERE sms_sid = 'newer'").fetchone()[0]
        assert newer > 30  # past every id the indexer has seen
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert {"messages_fts_delete", "ix_messages_problems", "ix_messages_sender"} <= names


def test_downgrade_and_upgrade_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'round.db'}"
    upgrade(url)
    from alembic import command

    from exosms.store.migrate import alembic_config

    command.downgrade(alembic_config(url), "0007")
    upgrade(url)
    with sqlite3.connect(tmp_path / "round.db") as conn:
        columns = {r[1] for r in conn.execute("PRAGMA table_info(messages)")}
        assert "takeovers" in columns


def test_postgres_ids_become_64_bit_with_the_rows_kept() -> None:
    """Migration 0011: a database at 0010 with a row keeps it, and ids past 2^31 work."""
    import asyncio

    import asyncpg
    from pg import create_database, drop_database, in_thread

    url = create_database()
    try:
        in_thread(upgrade, url, "0010")

        async def before() -> None:
            conn = await asyncpg.connect(url)
            try:
                await conn.execute(
                    "INSERT INTO messages (sms_sid, sender, sender_raw, recipient, recipient_raw,"
                    " body, query, date_raw, received_at, method, state) VALUES ('kept',"
                    " '+919052161119', '9052161119', '56070', '56070', 'hi', '', '', 1.0, 'GET',"
                    " 'done')"
                )
            finally:
                await conn.close()

        async def after() -> tuple[list[str], int, str]:
            conn = await asyncpg.connect(url)
            try:
                await conn.execute("SELECT setval('messages_id_seq', 3000000000)")
                await conn.execute(
                    "INSERT INTO messages (sms_sid, sender, sender_raw, recipient, recipient_raw,"
                    " body, query, date_raw, received_at, method, state) VALUES ('big',"
                    " '+919052161119', '9052161119', '56070', '56070', 'hi', '', '', 2.0, 'GET',"
                    " 'done')"
                )
                types = await conn.fetch(
                    "SELECT data_type FROM information_schema.columns WHERE"
                    " (table_name, column_name) IN (('messages', 'id'), ('outbox', 'id'),"
                    " ('conversations', 'read_id'), ('delivery_events', 'outbox_id'),"
                    " ('login_attempts', 'id'), ('conversations', 'last_message_id'))"
                )
                big = await conn.fetchval("SELECT id FROM messages WHERE sms_sid = 'big'")
                kept = await conn.fetchval("SELECT body FROM messages WHERE sms_sid = 'kept'")
                return sorted(row[0] for row in types), big, kept
            finally:
                await conn.close()

        in_thread(asyncio.run, before())
        in_thread(upgrade, url)
        types, big, kept = in_thread(asyncio.run, after())
        assert types == ["bigint"] * 6
        assert big == 3000000001 and kept == "hi"
    finally:
        drop_database(url)
