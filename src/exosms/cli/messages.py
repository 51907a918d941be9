"""`exosms messages`: the latest messages."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click

from exosms.cli.common import CONFIG_OPTION, DATABASE_OPTION, _settings, _when, _with_database


@click.command()
@CONFIG_OPTION
@DATABASE_OPTION
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def messages(config_file: Path | None, database_url: str | None, limit: int, as_json: bool) -> None:
    """List recent messages, newest first."""
    settings = _settings(config_file, database_url=database_url)
    rows = _with_database(settings, lambda db: db.store.recent(limit), reads_only=True)
    if as_json:
        for row in rows:
            click.echo(json.dumps(asdict(row), ensure_ascii=False))
        return
    if not rows:
        click.echo("no messages yet")
        return
    for row in rows:
        reply = "(no reply)" if row.reply is None else repr(row.reply)
        when = _when(row.received_at, settings.timezone)
        click.echo(
            f"{when}  {row.sms_sid}  {row.sender} -> {row.recipient}  "
            f"{row.outcome or row.state}  rule={row.rule or '-'}  "
            f"handler={'-' if row.handler_ms is None else f'{row.handler_ms:.1f}ms'}  "
            f"fetched={row.fetch_count}"
        )
        click.echo(f"    > {row.body!r}")
        click.echo(f"    < {reply}")
        if row.reply_parts:
            click.echo(
                f"      {row.reply_encoding}, {row.reply_units} units, {row.reply_parts} part(s)"
            )
        if row.dlt_template_id:
            click.echo(f"      DLT: template {row.dlt_template_id}")
        if row.dlt_reason:
            click.echo(f"      DLT: {row.dlt_reason}")
        if row.guard:
            click.echo(f"      no reply allowed: {row.guard}")
        if row.late_reply:
            click.echo(f"      late reply, sent by API: {row.late_reply!r}")
        if row.error:
            click.echo(f"      error: {row.error}")
