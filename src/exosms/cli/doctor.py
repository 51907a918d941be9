"""`exosms doctor`: is this set-up right? Each check one line, OK or the fix."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import click

from exosms.cli.common import (
    CONFIG_OPTION,
    DATABASE_OPTION,
    _config_path,
    _local_registry,
    _settings,
)


@click.command()
@CONFIG_OPTION
@DATABASE_OPTION
def doctor(config_file: Path | None, database_url: str | None) -> None:
    """Check the set-up: database, token, public_url, DLT templates and fixed replies, the
    Exotel API credentials (a read-only call) and the reply path (in process). Changes
    nothing, sends nothing; exits 1 when anything needs fixing."""
    from exosms import doctor as checks
    from exosms.cli.rules import fixed_reply_warnings
    from exosms.rules import load_rules

    settings = _settings(config_file, database_url=database_url)
    path = _config_path(config_file)
    logging.getLogger("exosms").setLevel(logging.ERROR)  # the checks say what they found

    results = [asyncio.run(checks.database(settings)), checks.token(settings)]
    results.append(checks.public_url(settings))
    if results[0].ok:  # the templates are in the database
        rules = load_rules(settings, path)
        registry = _local_registry(settings)
        templates = len(registry) if registry is not None else 0
        results.append(checks.dlt(templates, lambda: fixed_reply_warnings(rules, settings)))
    results.append(asyncio.run(checks.exotel(settings)))
    results.append(asyncio.run(checks.reply_path(settings, path)))
    for check in results:
        click.echo(check.line())
    bad = sum(1 for check in results if not check.ok)
    click.echo("all OK" if not bad else f"{bad} to fix")
    sys.exit(1 if bad else 0)
