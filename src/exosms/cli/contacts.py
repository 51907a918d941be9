"""`exosms contacts import|list`: a name per customer number, shown in the inbox."""

from __future__ import annotations

from pathlib import Path

import click

from exosms.cli.common import CONFIG_OPTION, DATABASE_OPTION, _settings, _with_database


@click.group()
def contacts() -> None:
    """Customers' names: import a CSV file, list them (edit one in the inbox)."""


@contacts.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@CONFIG_OPTION
@DATABASE_OPTION
def contacts_import(file: Path, config_file: Path | None, database_url: str | None) -> None:
    """Import FILE: a CSV of number,name (a header line with "number" and "name" may put
    them in any order); a number already named gets the new name."""
    from exosms.store.contacts import Contacts

    settings = _settings(config_file, database_url=database_url)
    data = file.read_bytes()
    report = _with_database(settings, lambda db: Contacts(db.logins.engine).import_csv(data, "cli"))
    click.echo(
        f"{file.name}: {report.added} added, {report.updated} updated, {report.unchanged}"
        f" unchanged, {len(report.skipped)} skipped"
    )
    for line, why in report.skipped[:20]:
        click.echo(f"  line {line}: {why}")
    if len(report.skipped) > 20:
        click.echo(f"  ... and {len(report.skipped) - 20} more skipped lines")


@contacts.command("list")
@CONFIG_OPTION
@DATABASE_OPTION
def contacts_list(config_file: Path | None, database_url: str | None) -> None:
    """Every contact, by name."""
    from exosms.store.contacts import Contacts

    settings = _settings(config_file, database_url=database_url)
    found = _with_database(settings, lambda db: Contacts(db.logins.engine).all(), reads_only=True)
    if not found:
        click.echo("no contacts: import a CSV with `exosms contacts import FILE`")
    for number, name in found:
        click.echo(f"{number}  {name}")
