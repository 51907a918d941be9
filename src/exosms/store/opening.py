"""Open a database by its URL: the one place that knows every store implementation."""

from __future__ import annotations

from exosms.store.database import Database
from exosms.store.postgres import PostgresStore
from exosms.store.sqlite import SqliteStore
from exosms.store.urls import parse_database_url

OpenedStore = (
    SqliteStore | PostgresStore
)  # a store with its services (.inbox, .outbox, .logins, .events)


def open_database(
    database_url: str, *, pool_size: int = 10, timeout: float = 5.0, indexing: bool = True
) -> Database:
    """Make the services of the database at ``database_url``; ``await db.open()`` to connect.

    ``timeout`` bounds each call a server database gets (connect, statement); ``indexing``
    off: an embedded database's search index is left to the server (``exosms forward``).
    """
    store = _store(database_url, pool_size, timeout, indexing)
    return Database(
        store=store,
        outbox=store.outbox,
        inbox=store.inbox,
        logins=store.logins,
        events=store.events,
    )


def open_store(database_url: str, *, pool_size: int = 10, timeout: float = 5.0) -> OpenedStore:
    """Only the hot-path store of ``database_url`` (what the reply engine needs)."""
    return _store(database_url, pool_size, timeout)


def _store(database_url: str, pool_size: int, timeout: float, indexing: bool = True) -> OpenedStore:
    parsed = parse_database_url(database_url)
    if parsed.backend == "sqlite":
        return SqliteStore(parsed, indexing=indexing)
    return PostgresStore(parsed, pool_size=pool_size, timeout=timeout)
