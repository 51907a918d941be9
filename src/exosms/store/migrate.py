"""Run the Alembic migrations that ship inside the package."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

from exosms.store.urls import parse_database_url

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(database_url: str) -> Config:
    parsed = parse_database_url(database_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # '%' is ConfigParser's interpolation character; URLs with %-escapes need it doubled.
    url = parsed.async_url.render_as_string(hide_password=False).replace("%", "%%")
    config.set_main_option("sqlalchemy.url", url)
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the database at ``database_url`` to ``revision``. Safe to run again.

    The migrations run their own event loop; from async code, use :func:`upgrade_async`.
    """
    parsed = parse_database_url(database_url)
    if parsed.sqlite_path is not None and parsed.sqlite_path.parent != Path():
        parsed.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(database_url), revision)


async def upgrade_async(database_url: str, revision: str = "head") -> None:
    """:func:`upgrade`, from inside a running event loop (in a worker thread)."""
    await asyncio.to_thread(upgrade, database_url, revision)
