"""`exosms events`: the events kept for forwarding, each destination's health, replays."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from exosms.cli.common import CONFIG_OPTION, DATABASE_OPTION, _settings, _when, _with_database
from exosms.cli.prune import AGE_FORMS, parse_age
from exosms.settings_sections import EVENT_TYPES


def _since(text: str) -> float:
    """``--since``: an age (``2h``, ``1d``) or an ISO date-time (``2026-12-01T09:00+05:30``)."""
    try:
        return time.time() - parse_age(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is neither an age ({AGE_FORMS}) nor a date-time like 2026-12-01T09:00",
            param_hint="--since",
        ) from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


@click.command()
@CONFIG_OPTION
@DATABASE_OPTION
def forward(config_file: Path | None, database_url: str | None) -> None:
    """Deliver events to the destinations, without serving HTTP, until stopped (SIGTERM).

    `exosms serve` starts one itself (`[forwarding] run = "process"`, the default); with
    `run = "external"` run your own: on PostgreSQL as many as you like, anywhere.
    """
    import asyncio
    import logging.config
    import signal

    from exosms.cli.common import _migrate
    from exosms.cli.forwarding_process import PARENT_ENV
    from exosms.config import secret_values
    from exosms.forwarding.destination import MissingExtra
    from exosms.forwarding.setup import forwarder_of
    from exosms.logs import logging_config
    from exosms.store import open_database

    settings = _settings(config_file, database_url=database_url)
    logging.config.dictConfig(
        logging_config(settings.log_level, secret_values(settings), settings.log_format)
    )
    if not settings.forwarding.destinations:
        raise click.ClickException("no destinations: set [[forwarding.destinations]] first")
    parent = int(os.environ.get(PARENT_ENV, "0"))
    if not parent:  # started by `exosms serve`: it migrated already
        _migrate(settings)

    async def run() -> None:
        # The server keeps the inbox's search index: this process only forwards.
        db = open_database(settings.database_url, pool_size=4, indexing=False)
        await db.open()
        try:
            forwarder = forwarder_of(settings.forwarding, db.events)
        except MissingExtra as error:
            await db.close()
            raise click.ClickException(str(error)) from None
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        forwarder.start()
        # The server is gone (even SIGKILLed): stop with it.
        orphaned = loop.create_task(_until_orphaned(parent, stop)) if parent else None
        names = ", ".join(d.name for d in settings.forwarding.destinations)
        logging.getLogger("exosms.forwarding").info("forwarding to %s", names)
        try:
            await stop.wait()
        finally:
            if orphaned is not None:
                orphaned.cancel()
            await forwarder.stop()
            await db.close()

    asyncio.run(run())


async def _until_orphaned(parent: int, stop: Any) -> None:
    import asyncio

    # No event tells a process its parent died: look twice a second.
    while os.getppid() == parent:  # noqa: ASYNC110
        await asyncio.sleep(0.5)
    stop.set()


@click.group()
def events() -> None:
    """Events kept for forwarding: list them, see each destination's health, replay."""


@events.command("list")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@click.option("--type", "kind", type=click.Choice(EVENT_TYPES), help="Only this type.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@CONFIG_OPTION
@DATABASE_OPTION
def list_events(
    limit: int, kind: str | None, as_json: bool, config_file: Path | None, database_url: str | None
) -> None:
    """The newest events, and where each was delivered."""
    settings = _settings(config_file, database_url=database_url)
    rows = _with_database(
        settings, lambda db: db.events.reports.recent(limit, kind=kind), reads_only=True
    )
    for pk, event_id, type_, sender, at, forwards in rows:
        if as_json:
            states = [
                {"destination": d, "state": s, "attempts": a, "last_error": e}
                for d, s, a, e in forwards
            ]
            record = {"pk": pk, "id": event_id, "type": type_, "sender": sender, "time": at}
            click.echo(json.dumps({**record, "forwards": states}, ensure_ascii=False))
            continue
        where = ", ".join(
            f"{d} {s}" + (f" ({a} tries)" if a > 1 else "") for d, s, a, _ in forwards
        )
        when = _when(at, settings.timezone)
        click.echo(f"{when}  {type_:<14} {sender:<16} {where or '(no destination)'}")


@events.command("status")
@click.option("--json", "as_json", is_flag=True, help="A JSON object per destination.")
@CONFIG_OPTION
@DATABASE_OPTION
def status(as_json: bool, config_file: Path | None, database_url: str | None) -> None:
    """Each destination: undelivered, dead-lettered, lag, last error."""
    settings = _settings(config_file, database_url=database_url)
    names = [d.name for d in settings.forwarding.destinations]
    if not names:
        click.echo("no destinations: set [[forwarding.destinations]] (docs/forwarding.md)")
        return
    found = _with_database(settings, lambda db: db.events.reports.health(names), reads_only=True)
    now = time.time()
    for health in found:
        lag = now - health.oldest_pending_at if health.oldest_pending_at is not None else 0.0
        if as_json:
            record = {
                "destination": health.destination,
                "pending": health.pending,
                "dead": health.dead,
                "delivered": health.delivered,
                "lag_seconds": round(lag, 3),
                "last_delivered_at": health.last_delivered_at,
                "last_error": health.last_error,
            }
            click.echo(json.dumps(record, ensure_ascii=False))
            continue
        click.echo(
            f"{health.destination}: {health.pending} undelivered (lag {lag:.1f}s),"
            f" {health.dead} dead, {health.delivered} delivered"
            + (f"; last error: {health.last_error}" if health.last_error else "")
        )


@events.command("replay")
@click.option("--since", "since_text", required=True, help=f"An age ({AGE_FORMS}) or a date-time.")
@click.option("--until", "until_text", help="An age or a date-time (default: now).")
@click.option(
    "--destination", "names", multiple=True, help="Only this destination (repeat for more)."
)
@click.option("--type", "kinds", multiple=True, type=click.Choice(EVENT_TYPES))
@CONFIG_OPTION
@DATABASE_OPTION
def replay(
    since_text: str,
    until_text: str | None,
    names: tuple[str, ...],
    kinds: tuple[str, ...],
    config_file: Path | None,
    database_url: str | None,
) -> None:
    """Deliver the events of a period again, with their ids (receivers may deduplicate)."""
    from exosms.forwarding.setup import route_of

    settings = _settings(config_file, database_url=database_url)
    configured = {d.name: d for d in settings.forwarding.destinations}
    unknown = [name for name in names if name not in configured]
    if unknown:
        raise click.BadParameter(
            f"no destination {unknown[0]!r} (configured: {', '.join(configured) or 'none'})",
            param_hint="--destination",
        )
    chosen = [configured[name] for name in names] if names else list(configured.values())
    if not chosen:
        raise click.ClickException("no destinations: set [[forwarding.destinations]] first")
    since = _since(since_text)
    until = _since(until_text) if until_text else None
    routes = [route_of(d) for d in chosen]
    count = _with_database(settings, lambda db: db.events.replay(routes, since, until, kinds))
    click.echo(
        f"queued {count} deliveries of events since {_when(since, settings.timezone)} to "
        + ", ".join(d.name for d in chosen)
        + " (a running server sends them)"
    )
