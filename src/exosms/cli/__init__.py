"""The ``exosms`` command. Thin: every command calls the library; one module per command
or group of commands, each registered here."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from exosms.cli import (
    contacts,
    credentials,
    db,
    dlt,
    doctor,
    events,
    messages,
    optouts,
    outbox,
    prune,
    rules,
    serve,
    simulate,
    users,
)
from exosms.cli.prune import parse_age

__all__ = ["main", "parse_age"]


@click.group()
@click.version_option(package_name="exosms")
def main() -> None:
    """exosms: answer the SMS your customers send to your Exotel number."""
    # As `python -m` does, for `--app shop:router` and `python = "shop:router"` rules: the
    # command is the process's entry point, so this is set once, before anything is loaded.
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)


for _command in (
    serve.serve,
    simulate.simulate,
    rules.rules,
    credentials.init,
    credentials.password,
    optouts.optouts,
    prune.prune,
    outbox.send,
    outbox.outbox,
    serve.fake_exotel,
    db.db,
    db.backup,
    db.restore,
    dlt.dlt,
    messages.messages,
    events.events,
    events.forward,
    users.users,
    contacts.contacts,
    doctor.doctor,
):
    main.add_command(_command)
