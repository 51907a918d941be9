"""`exosms optouts list|add|remove`: each says exactly what changed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from exosms.cli.common import CONFIG_OPTION, DATABASE_OPTION, _settings, _when, _with_database
from exosms.store import Database

EVERYWHERE = "*"  # the recipient of an opt-out from every Exotel number (optout_changes)


@click.group()
def optouts() -> None:
    """Senders who opted out: list, add, remove.

    An opt-out is from every Exotel number (STOP to any, or `add` without `--to`) or from
    one (`--to`): nothing is sent to the customer from there until they send START or you
    remove it.
    """


def _checked(check: Callable[[str], str], value: str, hint: str) -> str:
    from exosms.optout_changes import BadNumber

    try:
        return check(value)
    except BadNumber as error:
        raise click.BadParameter(str(error), param_hint=hint) from None


@optouts.command("list")
@CONFIG_OPTION
@DATABASE_OPTION
def optouts_list(config_file: Path | None, database_url: str | None) -> None:
    """Every opt-out, newest first."""
    settings = _settings(config_file, database_url=database_url)
    rows = _with_database(settings, lambda db: db.store.list_optouts(), reads_only=True)
    if not rows:
        click.echo("no opt-outs")
    for row in rows:
        where = "all numbers" if row.recipient == EVERYWHERE else row.recipient
        since = _when(row.created_at, settings.timezone)
        click.echo(f"{row.sender}  from {where}  since {since}  ({row.source})")


@optouts.command("add")
@click.argument("sender")
@click.option("--to", "recipient", help="Only from this Exotel number (default: every one).")
@CONFIG_OPTION
@DATABASE_OPTION
def optouts_add(
    sender: str, recipient: str | None, config_file: Path | None, database_url: str | None
) -> None:
    """Opt SENDER out: nothing more is sent to them (from --to only, or from every number)."""
    from exosms.optout_changes import customer_number, exotel_number, opt_out

    settings = _settings(config_file, database_url=database_url)
    who = _checked(customer_number, sender, "SENDER")
    where = _checked(exotel_number, recipient, "--to") if recipient else EVERYWHERE

    async def go(db: Database) -> str:
        change = await opt_out(db.store, who, where, "cli")
        return change.said if change.changed else change.said + ": nothing changed"

    click.echo(_with_database(settings, go))


@optouts.command("remove")
@click.argument("sender")
@click.option("--to", "recipient", help="Only the opt-out from this Exotel number.")
@CONFIG_OPTION
@DATABASE_OPTION
def optouts_remove(
    sender: str, recipient: str | None, config_file: Path | None, database_url: str | None
) -> None:
    """Opt SENDER back in: without --to, every opt-out of theirs goes (from every number and
    from each one); with --to, only the one from that number."""
    from exosms.optout_changes import customer_number, exotel_number, opt_in

    settings = _settings(config_file, database_url=database_url)
    who = _checked(customer_number, sender, "SENDER")
    only = _checked(exotel_number, recipient, "--to") if recipient is not None else None

    async def go(db: Database) -> str:
        change = await opt_in(db.store, who, only)
        return change.said if change.changed else change.said + ": nothing changed"

    click.echo(_with_database(settings, go))
