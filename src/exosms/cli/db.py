"""`exosms db upgrade`, `exosms backup FILE`, `exosms restore FILE`."""

from __future__ import annotations

from pathlib import Path

import click

from exosms.cli.common import CONFIG_OPTION, DATABASE_OPTION, _migrate, _settings
from exosms.config import Settings


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


def _sqlite_path(settings: Settings, what: str) -> Path:
    from exosms.store.urls import parse_database_url

    path = parse_database_url(settings.database_url).sqlite_path
    if path is None:
        raise click.ClickException(
            f"{what} is for the embedded SQLite database; on PostgreSQL use its own tools:"
            " pg_dump --format=custom (docs/deploying.md)"
        )
    return path


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@CONFIG_OPTION
@DATABASE_OPTION
def backup(file: Path, config_file: Path | None, database_url: str | None) -> None:
    """Back the SQLite database up to FILE while the server runs (SQLite's online backup),
    checked with integrity_check before FILE is replaced."""
    from exosms.store.backup import BackupError
    from exosms.store.backup import backup as take

    settings = _settings(config_file, database_url=database_url)
    try:
        done = take(_sqlite_path(settings, "backup"), file)
    except BackupError as error:
        raise click.ClickException(str(error)) from None
    megabytes = done.size / 1_000_000
    click.echo(f"backed up {done.messages} messages to {file} ({megabytes:.1f} MB), integrity ok")


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--yes", is_flag=True, help="Replace a database that holds messages, no question.")
@CONFIG_OPTION
@DATABASE_OPTION
def restore(file: Path, yes: bool, config_file: Path | None, database_url: str | None) -> None:
    """Put the backup FILE in place of the SQLite database (stop exosms serve first)."""
    import sqlite3

    from exosms.store.backup import BackupError
    from exosms.store.backup import restore as put_back

    settings = _settings(config_file, database_url=database_url)
    target = _sqlite_path(settings, "restore")
    if target.is_file() and not yes:
        try:
            conn = sqlite3.connect(f"file:{target}?mode=ro", uri=True)
            held = conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
            conn.close()
        except sqlite3.DatabaseError:
            held = 0
        if held:
            click.confirm(f"{target} holds {held} messages: replace it with {file}?", abort=True)
    try:
        done = put_back(file, target)
    except BackupError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"restored {done.messages} messages from {file} into {target}")
