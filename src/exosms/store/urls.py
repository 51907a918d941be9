"""Database URLs as users write them, and the drivers exosms uses for each."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError


class DatabaseUrlError(ValueError):
    """The database URL is not one exosms can use."""


@dataclass(frozen=True, slots=True)
class DatabaseUrl:
    """A parsed database URL: which backend, and the async URL SQLAlchemy should use."""

    backend: str  # "sqlite" | "postgresql"
    async_url: URL
    sqlite_path: Path | None = None

    def redacted(self) -> str:
        return self.async_url.render_as_string(hide_password=True)


def parse_database_url(text: str) -> DatabaseUrl:
    """``sqlite:///file.db`` or ``postgresql://user:pw@host/db`` (driver suffixes allowed)."""
    try:
        url = make_url(text)
    except ArgumentError:
        raise DatabaseUrlError(
            "database URL must look like sqlite:///exosms.db or postgresql://user@host/db"
        ) from None
    backend = url.get_backend_name()
    if backend == "sqlite":
        if not url.database or url.database == ":memory:":
            raise DatabaseUrlError(
                "SQLite needs a file (sqlite:///exosms.db): an in-memory database loses messages"
            )
        path = Path(url.database)
        return DatabaseUrl("sqlite", url.set(drivername="sqlite+aiosqlite"), path)
    if backend in ("postgresql", "postgres"):
        return DatabaseUrl("postgresql", url.set(drivername="postgresql+asyncpg"))
    raise DatabaseUrlError(f"unsupported database {backend!r}: use sqlite or postgresql")
