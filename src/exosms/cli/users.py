"""`exosms users add|list|remove|passwd`: the people who log in to the inbox.

`admin` is the first admin, set with `exosms password`; everyone else is here, each with a
role (admin: templates, opt-outs, users; agent: read, reply, assign).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from exosms.cli.common import CONFIG_OPTION, DATABASE_OPTION, _settings, _when, _with_database


@click.group()
def users() -> None:
    """Inbox users: add, list, remove, and set a password."""


def _name(value: str) -> str:
    from exosms.store.users import UserError, user_name

    try:
        return user_name(value)
    except UserError as error:
        raise click.BadParameter(str(error), param_hint="NAME") from None


def _new_hash(stdin: bool) -> str:
    from exosms.passwords import PasswordError, hash_password

    if stdin:
        given = sys.stdin.readline().rstrip("\r\n")
    else:
        given = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        return hash_password(given)
    except PasswordError as error:
        raise click.ClickException(str(error)) from None


STDIN = click.option(
    "--password-stdin", is_flag=True, help="Read the password from standard input (one line)."
)


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["agent", "admin"]), default="agent", show_default=True)
@STDIN
@CONFIG_OPTION
@DATABASE_OPTION
def users_add(
    name: str,
    role: str,
    password_stdin: bool,
    config_file: Path | None,
    database_url: str | None,
) -> None:
    """Add NAME with a ROLE and a password (asked twice, or --password-stdin)."""
    from exosms.store.users import UserError, Users

    settings = _settings(config_file, database_url=database_url)
    who = _name(name)
    hashed = _new_hash(password_stdin)
    try:
        _with_database(settings, lambda db: Users(db.logins.engine).add(who, role, hashed))
    except UserError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"{who} added as {role}: they log in to the inbox with their name and password")


@users.command("list")
@CONFIG_OPTION
@DATABASE_OPTION
def users_list(config_file: Path | None, database_url: str | None) -> None:
    """Every user and their role (the first admin, `admin`, first)."""
    from exosms.store.users import FIRST_ADMIN, Users

    settings = _settings(config_file, database_url=database_url)
    found = _with_database(settings, lambda db: Users(db.logins.engine).all(), reads_only=True)
    click.echo(f"{FIRST_ADMIN}  admin  (the first admin: exosms password)")
    for user in found:
        click.echo(f"{user.name}  {user.role}  since {_when(user.created_at, settings.timezone)}")


@users.command("remove")
@click.argument("name")
@CONFIG_OPTION
@DATABASE_OPTION
def users_remove(name: str, config_file: Path | None, database_url: str | None) -> None:
    """Remove NAME; they are logged out everywhere at once."""
    from exosms.store.users import Users

    settings = _settings(config_file, database_url=database_url)
    who = _name(name)
    if not _with_database(settings, lambda db: Users(db.logins.engine).remove(who)):
        raise click.ClickException(f"there is no user {who!r}")
    click.echo(f"{who} removed: logged out everywhere")


@users.command("passwd")
@click.argument("name")
@STDIN
@CONFIG_OPTION
@DATABASE_OPTION
def users_passwd(
    name: str, password_stdin: bool, config_file: Path | None, database_url: str | None
) -> None:
    """A new password for NAME; their sessions end (the first admin: `exosms password`)."""
    from exosms.store.users import FIRST_ADMIN, Users

    settings = _settings(config_file, database_url=database_url)
    who = _name(name)
    if who == FIRST_ADMIN:
        raise click.ClickException(f"{FIRST_ADMIN}'s password is set with `exosms password`")
    hashed = _new_hash(password_stdin)
    if not _with_database(settings, lambda db: Users(db.logins.engine).set_password(who, hashed)):
        raise click.ClickException(f"there is no user {who!r}")
    click.echo(f"{who} has a new password: logged out everywhere")
