"""`exosms dlt import|list|check`: DLT templates."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import click

from exosms.cli.common import (
    CONFIG_OPTION,
    DATABASE_OPTION,
    _config_path,
    _registry,
    _settings,
    _with_database,
)


@click.group()
def dlt() -> None:
    """DLT content templates: import, list, and check a text against them."""


@dlt.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@CONFIG_OPTION
@DATABASE_OPTION
def dlt_import(file: Path, config_file: Path | None, database_url: str | None) -> None:
    """Import templates from a portal export (CSV, XLSX) or a TOML list.

    Only approved rows are imported; the others are listed with why. Importing again updates
    changed templates and never duplicates them.
    """
    from exosms.dlt_import import ImportFileError, count_lines, read_templates

    settings = _settings(config_file, database_url=database_url)
    try:
        total = count_lines(file)
        if total > 2000:
            with click.progressbar(
                length=total, label=f"reading {file.name}", file=sys.stderr
            ) as bar:
                result = read_templates(file, progress=bar.update)
        else:
            result = read_templates(file)
    except ImportFileError as error:
        raise click.ClickException(f"{file.name}: {error}") from None

    inserted, updated = _with_database(
        settings, lambda db: db.store.save_templates(result.templates)
    )
    unchanged = len(result.templates) - inserted - updated
    click.echo(
        f"{file.name}: {result.rows} rows: {inserted} imported, {updated} updated, "
        f"{unchanged} unchanged, {len(result.skipped)} skipped"
    )
    for number, reason in result.skipped[:20]:
        click.echo(f"  row {number}: {reason}")
    if len(result.skipped) > 20:
        click.echo(f"  ... and {len(result.skipped) - 20} more skipped rows")
    # With templates in, the check enforces: say now which fixed replies it would refuse.
    from exosms.cli.rules import fixed_reply_warnings
    from exosms.rules import load_rules

    rules_file = load_rules(settings, _config_path(config_file))
    for warning in fixed_reply_warnings(rules_file, settings):
        click.echo(warning)


@dlt.command("list")
@CONFIG_OPTION
@DATABASE_OPTION
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def dlt_list(config_file: Path | None, database_url: str | None, as_json: bool) -> None:
    """List the approved templates in the registry."""
    settings = _settings(config_file, database_url=database_url)
    templates = _with_database(settings, lambda db: db.store.load_templates(), reads_only=True)
    if as_json:
        for t in templates:
            click.echo(json.dumps(asdict(t), ensure_ascii=False))
        return
    if not templates:
        click.echo("no templates: import your portal export with `exosms dlt import FILE`")
        return
    for t in templates:
        label = f" ({t.name})" if t.name else ""
        headers = f" [{', '.join(t.headers)}]" if t.headers else ""
        click.echo(f"{t.template_id}{label}{headers}: {t.content!r}")
    click.echo(f"{len(templates)} approved template(s)")


@dlt.command("check")
@click.argument("text")
@CONFIG_OPTION
@DATABASE_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
def dlt_check(text: str, config_file: Path | None, database_url: str | None, as_json: bool) -> None:
    """Check TEXT against the registry: encoding, parts, and the matching template.

    Exit status 0 when a template matches, 1 when none does.
    """
    from exosms.segments import segment

    settings = _settings(config_file, database_url=database_url)
    registry = _registry(
        settings, _with_database(settings, lambda db: db.store.load_templates(), reads_only=True)
    )
    parts = segment(text)
    verdict = registry.match(text)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "encoding": parts.encoding,
                    "units": parts.units,
                    "parts": parts.count,
                    "template_id": verdict.template_id,
                    "reason": verdict.reason or None,
                    "closest_template_id": verdict.closest_id,
                    "warnings": list(verdict.warnings),
                },
                ensure_ascii=False,
            )
        )
    else:
        click.echo(f"{parts.encoding}, {parts.units} units, {parts.count} SMS part(s)")
        click.echo(verdict.describe())
    sys.exit(0 if verdict.matched else 1)
