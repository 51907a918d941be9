"""`exosms send` and `exosms outbox`: outgoing SMS through Exotel's API."""

from __future__ import annotations

from pathlib import Path

import click

from exosms.cli.common import (
    CONFIG_OPTION,
    DATABASE_OPTION,
    _local_registry,
    _settings,
    _with_database,
)
from exosms.store import Database


@click.command()
@click.option("--to", "to", required=True, help="Recipient, e.g. 9052161119.")
@click.option("--body", required=True, help="The SMS text (must match a DLT template).")
@click.option("--from", "sender", help="ExoPhone or DLT header (default: [exotel] sender).")
@click.option("--template", "template_id", help="DLT template id (default: the matching one).")
@CONFIG_OPTION
@DATABASE_OPTION
def send(
    to: str,
    body: str,
    sender: str | None,
    template_id: str | None,
    config_file: Path | None,
    database_url: str | None,
) -> None:
    """Send one SMS now through Exotel's API, after the DLT check, through the outbox.

    Stored first, sent once, with a status callback when `[exotel] public_url` is set: it
    shows in `exosms outbox` like every other SMS sent.
    """
    from exosms.exotel.client import ExotelError, OutgoingSms
    from exosms.numbers import normalise
    from exosms.sending import worker_from_settings

    settings = _settings(config_file, database_url=database_url)
    if not settings.exotel.is_configured:
        raise click.ClickException(
            "set [exotel] account_sid, api_key and api_token (or EXOSMS_EXOTEL__*) first"
        )
    registry = _local_registry(settings)

    async def go(db: Database) -> str:
        worker = worker_from_settings(
            settings.exotel,
            db.outbox,
            webhook_token=settings.auth.token,
            dlt_mode=settings.dlt.mode,
            registry=registry,
        )
        try:
            # The DLT check and the sender before anything is stored: a refusal stores nothing.
            worker.client.prepare(OutgoingSms(normalise(to), body, sender, template_id))
            row_id = await db.outbox.enqueue(
                normalise(to), body, sender=sender, template_id=template_id
            )
            assert row_id is not None  # no message_sid: never a duplicate
            row = await db.outbox.lease(row_id, worker.lease_seconds)
            if row is None:
                return f"queued as #{row_id}: the running server is sending it"
            await worker.send_row(row)
        finally:
            await worker.client.aclose()
        done = await db.outbox.get(row_id)
        assert done is not None
        if done.status == "sent":
            return f"sent as #{row_id}: Exotel SmsSid {done.exotel_sid}"
        raise click.ClickException(f"#{row_id} {done.status}: {done.last_error}")

    try:
        click.echo(_with_database(settings, go))
    except ExotelError as error:
        raise click.ClickException(str(error)) from None


@click.group(invoke_without_command=True)
@CONFIG_OPTION
@DATABASE_OPTION
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 100_000))
@click.pass_context
def outbox(
    ctx: click.Context, config_file: Path | None, database_url: str | None, limit: int
) -> None:
    """SMS sent (or waiting to be sent) through Exotel's API, newest first.

    `exosms outbox resend ID` / `give-up ID` decide on an SMS held because Exotel's answer
    was lost (it may have been sent).
    """
    ctx.obj = (config_file, database_url)
    if ctx.invoked_subcommand is not None:
        return
    settings = _settings(config_file, database_url=database_url)
    rows = _with_database(settings, lambda db: db.outbox.recent(limit), reads_only=True)
    if not rows:
        click.echo("the outbox is empty")
    for row in rows:
        delivery = row.delivery_status or "-"
        units = f"{row.sms_units} units (we counted {row.parts})" if row.sms_units else ""
        click.echo(
            f"#{row.id} {row.status} to {row.to_number} exotel={row.exotel_sid or '-'} "
            f"delivery={delivery} {row.detailed_status_code or ''} {units}"
        )
        click.echo(f"    {row.body!r}")
        if row.last_error:
            click.echo(f"    error: {row.last_error}")
        if row.status in ("held", "unknown"):
            click.echo(
                f"    decide: exosms outbox resend {row.id}  |  exosms outbox give-up {row.id}"
            )


def _decide(
    ctx: click.Context,
    row_id: int,
    resend: bool,
    config_file: Path | None,
    database_url: str | None,
) -> None:
    group_config, group_database = ctx.obj
    config_file, database_url = config_file or group_config, database_url or group_database
    settings = _settings(config_file, database_url=database_url)
    row = _with_database(settings, lambda db: db.outbox.decide(row_id, resend, by="cli"))
    if row is None:
        raise click.ClickException(
            f"#{row_id}: no such SMS held, in doubt{' or failed' if resend else ''}"
        )
    click.echo(f"#{row_id} {'queued to send again' if resend else 'given up'}")


@outbox.command("resend")
@click.argument("row_id", type=click.IntRange(1, 2**62))
@CONFIG_OPTION
@DATABASE_OPTION
@click.pass_context
def outbox_resend(
    ctx: click.Context, row_id: int, config_file: Path | None, database_url: str | None
) -> None:
    """Send held (or failed) SMS ROW_ID again: the customer may get it twice."""
    _decide(ctx, row_id, True, config_file, database_url)


@outbox.command("give-up")
@click.argument("row_id", type=click.IntRange(1, 2**62))
@CONFIG_OPTION
@DATABASE_OPTION
@click.pass_context
def outbox_give_up(
    ctx: click.Context, row_id: int, config_file: Path | None, database_url: str | None
) -> None:
    """Do not send held SMS ROW_ID again (mark it failed)."""
    _decide(ctx, row_id, False, config_file, database_url)
