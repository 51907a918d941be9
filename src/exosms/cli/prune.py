"""`exosms prune`: delete old messages in small batches."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from exosms.cli.common import CONFIG_OPTION, DATABASE_OPTION, _settings, _when, _with_database

_AGE_UNITS = {"min": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}


AGE_FORMS = "a number with min, h, d or w (e.g. 90d, 12h, 30min, 2w)"


def parse_age(text: str) -> float:
    """``--older-than``: seconds in ``90d``, ``12h``, ``30min``, ``2w``. A bare number and
    ``m`` are refused: one reads as minutes or months, and a prune is not undone."""
    import re

    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(min|h|d|w)\s*", text)
    if found is None:
        raise ValueError(f"{text!r} is not an age: use {AGE_FORMS}")
    age = float(found[1]) * _AGE_UNITS[found[2]]
    if age <= 0:
        raise ValueError(f"{text!r} would delete every message: use {AGE_FORMS}")
    return age


@click.command()
@click.option("--older-than", "older_than", required=True, help=f"Age: {AGE_FORMS}.")
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@click.option("--yes", is_flag=True, help="Do not ask in a terminal before deleting.")
@click.option("--batch", default=1000, show_default=True, type=click.IntRange(1, 100_000))
@CONFIG_OPTION
@DATABASE_OPTION
def prune(
    older_than: str,
    dry_run: bool,
    yes: bool,
    batch: int,
    config_file: Path | None,
    database_url: str | None,
) -> None:
    """Delete messages older than a given age, in small batches (no long locks)."""
    import time

    try:
        age = parse_age(older_than)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--older-than") from None
    settings = _settings(config_file, database_url=database_url)
    before = time.time() - age
    count = _with_database(settings, lambda db: db.store.count_before(before))
    if dry_run:
        click.echo(
            f"would delete {count} message(s) received before {_when(before, settings.timezone)}"
        )
        return
    if count and sys.stdin.isatty() and not yes:
        when = _when(before, settings.timezone)
        click.echo(f"{count} message(s) received before {when} will be deleted.")
        click.confirm("Delete them?", abort=True)
    deleted = _with_database(settings, lambda db: db.store.prune(before, batch))
    click.echo(f"deleted {deleted} message(s) received before {_when(before, settings.timezone)}")
