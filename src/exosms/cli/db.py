"""`exosms db upgrade`."""

from __future__ import annotations

from pathlib import Path

import click

from exosms.cli.common import CONFIG_OPTION, DATABASE_OPTION, _migrate, _settings


@click.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@CONFIG_OPTION
@DATABASE_OPTION
def db_upgrade(config_file: Path | None, database_url: str | None) -> None:
    """Create the tables, or bring them up to date. Safe to run again."""
    settings = _settings(config_file, database_url=database_url)
    _migrate(settings)
    click.echo("database is up to date")
