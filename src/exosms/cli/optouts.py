"""`exosms optouts list|add|remove`."""

from __future__ import annotations

from pathlib import Path

import click

from exosms.cli.common import CONFIG_OPTION, DATABASE_OPTION, _settings, _when, _with_database


@click.group()
def optouts() -> None:
    """Senders who opted out: list, add, remove."""


def _optout_args(sender: str, recipient: str | None) -> tuple[str, str]:
    from exosms.numbers import normalise

    return normalise(sender), normalise(recipient) if recipient else "*"


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
        where = "all numbers" if row.recipient == "*" else row.recipient
        click.echo(f"{row.sender}  from {where}  since {_when(row.created_at)}  ({row.source})")


def _optout_command(opt_out: bool, help_text: str, done: str, unchanged: str) -> None:
    @optouts.command("add" if opt_out else "remove", help=help_text)
    @click.argument("sender")
    @click.option("--to", "recipient", help="Only this Exotel number (default: all).")
    @CONFIG_OPTION
    @DATABASE_OPTION
    def command(
        sender: str, recipient: str | None, config_file: Path | None, database_url: str | None
    ) -> None:
        settings = _settings(config_file, database_url=database_url)
        who, where = _optout_args(sender, recipient)
        changed = _with_database(settings, lambda db: db.store.set_optout(who, where, opt_out))
        click.echo(f"{who} {done if changed else unchanged}")


_optout_command(
    True, "Opt SENDER out: no more replies to them.", "opted out", "was already opted out"
)


_optout_command(False, "Opt SENDER back in.", "opted back in", "was not opted out")
