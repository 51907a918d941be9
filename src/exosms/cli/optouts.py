"""`exosms optouts list|add|remove`: each says exactly what changed."""

from __future__ import annotations

from pathlib import Path

import click

from exosms.cli.common import CONFIG_OPTION, DATABASE_OPTION, _settings, _when, _with_database
from exosms.store import Database

EVERYWHERE = "*"  # the recipient of an opt-out from every Exotel number


@click.group()
def optouts() -> None:
    """Senders who opted out: list, add, remove.

    An opt-out is from every Exotel number (STOP to any, or `add` without `--to`) or from
    one (`--to`): nothing is sent to the customer from there until they send START or you
    remove it.
    """


def customer_number(value: str) -> str:
    """A customer's number in its stored form; a clear error for anything else."""
    from exosms.numbers import is_phone_number, normalise

    number = normalise(value)
    if not is_phone_number(number):
        raise click.BadParameter(
            f"{value!r} is not a phone number (e.g. 9052161119 or +919052161119)",
            param_hint="SENDER",
        )
    return number


def exotel_number(value: str | None) -> str:
    """An Exotel number (an ExoPhone, or a short code) in its stored form, or every one."""
    from exosms.numbers import is_phone_number, normalise

    if value is None:
        return EVERYWHERE
    number = normalise(value)
    if not (is_phone_number(number) or (number.isdigit() and 3 <= len(number) <= 8)):
        raise click.BadParameter(
            f"{value!r} is not an Exotel number (an ExoPhone such as 08041000000, or a"
            " short code such as 56070)",
            param_hint="--to",
        )
    return number


def _place(recipient: str) -> str:
    return "every Exotel number" if recipient == EVERYWHERE else recipient


@optouts.command("list")
@CONFIG_OPTION
@DATABASE_OPTION
def optouts_list(config_file: Path | None, database_url: str | None) -> None:
    """Every opt-out, newest first."""
    settings = _settings(config_file, database_url=database_url)
    rows = _with_database(settings, lambda db: db.store.list_optouts())
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
    settings = _settings(config_file, database_url=database_url)
    who, where = customer_number(sender), exotel_number(recipient)

    async def go(db: Database) -> str:
        existing = {row.recipient for row in await db.store.list_optouts() if row.sender == who}
        if EVERYWHERE in existing:
            return f"{who} was already opted out from every Exotel number: nothing changed"
        if where in existing:
            return f"{who} was already opted out from {where}: nothing changed"
        await db.store.set_optout(who, where, True)
        return f"{who} opted out from {_place(where)}: nothing more is sent to them from there"

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
    settings = _settings(config_file, database_url=database_url)
    who = customer_number(sender)
    only = exotel_number(recipient) if recipient is not None else None

    async def go(db: Database) -> str:
        existing = sorted(
            {row.recipient for row in await db.store.list_optouts() if row.sender == who}
        )
        chosen = [r for r in existing if only is None or r == only]
        for place in chosen:
            await db.store.set_optout(who, place, False)
        left = [r for r in existing if r not in chosen]
        if not chosen:
            where = f" from {only}" if only else ""
            said = f"{who} was not opted out{where}: nothing changed"
        else:
            said = f"{who}: removed the opt-out from " + ", ".join(_place(r) for r in chosen)
        if left:
            said += "; still opted out from " + ", ".join(_place(r) for r in left)
        elif chosen:
            said += "; they get replies again"
        return said

    click.echo(_with_database(settings, go))
