"""The message row is declared once (StoredMessage), and the migrations build exactly what
schema.py declares, on both databases (Alembic's compare_metadata)."""

from __future__ import annotations

import asyncio
from dataclasses import fields
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from exosms.store.base import NewMessage, StoredMessage
from exosms.store.migrate import upgrade
from exosms.store.schema import MESSAGE_COLUMNS, NEW_MESSAGE_COLUMNS, messages, metadata

# Made by the migrations on purpose and not part of the metadata the code reads, each with
# its reason: SQLite's full-text index and its mark (exosms.store.sqlite.index_inbox), the
# partial index of problem outcomes, and PostgreSQL's expression index for text search.
MIGRATION_ONLY = {
    "messages_fts",
    "messages_fts_config",
    "messages_fts_data",
    "messages_fts_docsize",
    "messages_fts_idx",
    "messages_fts_content",
    "inbox_indexed",
    "ix_messages_problems",
    "ix_messages_text",
}


def test_the_message_row_is_declared_once() -> None:
    table = [column.name for column in messages.columns]
    assert list(MESSAGE_COLUMNS) == [f.name for f in fields(StoredMessage)]
    assert set(MESSAGE_COLUMNS) <= set(table), set(MESSAGE_COLUMNS) - set(table)
    assert [c for c in table if c in MESSAGE_COLUMNS] == list(MESSAGE_COLUMNS)  # same order
    assert set(NEW_MESSAGE_COLUMNS) <= set(MESSAGE_COLUMNS)
    values = {f.name: f"v{i}" for i, f in enumerate(fields(NewMessage))}
    row = NewMessage(**values).row("owner", 1.0)  # type: ignore[arg-type]
    assert row == (*(values[name] for name in NEW_MESSAGE_COLUMNS), "owner", 1.0)


def _differences(url: str) -> list[object]:
    async def run() -> list[object]:
        engine = create_async_engine(
            url.replace("sqlite:///", "sqlite+aiosqlite:///").replace(
                "postgresql://", "postgresql+asyncpg://"
            )
        )
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(
                    lambda sync: compare_metadata(
                        MigrationContext.configure(sync, opts={"compare_type": True}), metadata
                    )
                )
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _name(diff: object) -> str | None:
    if isinstance(diff, tuple) and len(diff) > 1:
        return getattr(diff[1], "name", None)
    return None


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_migrations_build_what_schema_py_declares(backend: str, tmp_path: Path) -> None:
    if backend == "sqlite":
        url, drop = f"sqlite:///{tmp_path / 'schema.db'}", None
    else:
        from pg import create_database, drop_database

        url, drop = create_database(), drop_database
    try:
        upgrade(url)
        found = [d for d in _differences(url) if _name(d) not in MIGRATION_ONLY]
        if backend == "sqlite":
            # SQLite reflects `id INTEGER PRIMARY KEY` as nullable and an inline UNIQUE
            # without its name: neither is a difference in the table itself.
            found = [
                d
                for d in found
                if not (isinstance(d, list) and d[0][0] == "modify_nullable" and d[0][3] == "id")
                and not (isinstance(d, tuple) and d[0] == "add_constraint")
            ]
        assert found == [], found
    finally:
        if drop is not None:
            drop(url)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_rule_index_holds_answered_messages_and_serves_the_rule_queries(
    backend: str, tmp_path: Path
) -> None:
    """A claim adds nothing to ix_messages_rule (migration 0023), and the inbox's filter by
    rule and its list of rules still read it (not the table)."""
    import sqlite3

    by_rule = "SELECT id FROM messages m WHERE m.rule = 'order' ORDER BY received_at DESC"
    first_rule = "SELECT MIN(rule) FROM messages WHERE rule IS NOT NULL"
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'rules.db'}"
        upgrade(url)
        with sqlite3.connect(tmp_path / "rules.db") as conn:
            (sql,) = conn.execute(
                "SELECT sql FROM sqlite_master WHERE name = 'ix_messages_rule'"
            ).fetchone()
            plans = [
                str(conn.execute(f"EXPLAIN QUERY PLAN {q}").fetchall())
                for q in (by_rule, first_rule)
            ]
        assert sql.endswith("WHERE rule IS NOT NULL")
        assert all("ix_messages_rule" in plan for plan in plans), plans
        return
    import asyncpg
    from pg import create_database, drop_database

    url = create_database()
    try:
        upgrade(url)

        async def read() -> tuple[str, list[str]]:
            conn = await asyncpg.connect(url)
            try:
                await conn.execute("SET enable_seqscan = off")
                definition = await conn.fetchval(
                    "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_messages_rule'"
                )
                plans = [
                    "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN {q}"))
                    for q in (by_rule, first_rule)
                ]
                return str(definition), plans
            finally:
                await conn.close()

        definition, plans = asyncio.run(read())
        assert definition.endswith("WHERE (rule IS NOT NULL)"), definition
        assert all("ix_messages_rule" in plan for plan in plans), plans
    finally:
        drop_database(url)
