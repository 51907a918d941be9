"""`exosms simulate`: call a reply URL the way Exotel does."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from exosms.cli.common import CONFIG_OPTION, _local_registry, _settings
from exosms.config import (
    ConfigError,
)


@click.command()
@click.argument("url", required=False)
@click.option("--from", "sender", default="9052161119", show_default=True, help="Sender number.")
@click.option("--to", "recipient", default="56070", show_default=True, help="Exotel number.")
@click.option("--body", default="Hello World", show_default=True, help="SMS text.")
@click.option("--sid", help="SmsSid to send (default: a fresh one).")
@click.option("--date", help="Date to send (default: now, India time, YYYY-MM-DD HH:MM:SS).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object (docs/simulate.md).")
@click.option("--budget", default=2.0, show_default=True, help="Seconds an answer may take.")
@click.option("--max-parts", default=7, show_default=True, help="Most SMS parts a reply may use.")
@click.option("--repeat", default=1, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--concurrency", default=1, show_default=True, type=click.IntRange(1, 1000))
@click.option("--script", type=click.Path(dir_okay=False, path_type=Path), help="Conversation.")
@click.option("--app", "app", help="Check module:router in process instead of a URL.")
@click.option("--timeout", default=15.0, show_default=True, help="Seconds to wait per request.")
@CONFIG_OPTION
@click.option("--database", "database_url", help="Where to find DLT templates to check against.")
def simulate(
    url: str | None,
    sender: str,
    recipient: str,
    body: str,
    sid: str | None,
    date: str | None,
    as_json: bool,
    budget: float,
    max_parts: int,
    repeat: int,
    concurrency: int,
    script: Path | None,
    app: str | None,
    timeout: float,
    config_file: Path | None,
    database_url: str | None,
) -> None:
    """Call URL the way Exotel's applet does (HEAD, then GET) and check the answer.

    Exit status: 0 when every check passes, 1 on a violation, 2 when URL cannot be reached.
    """
    from exosms.exotel.caller import AppletSms, exotel_now, new_sid
    from exosms.httpraw import Endpoint
    from exosms.loading import AppLoadError
    from exosms.simulate_cli import run

    if (url is None) == (app is None):
        raise click.UsageError("give a URL to check, or --app module:router (not both)")
    if url is not None:
        try:
            Endpoint.parse(url)
        except ValueError as error:
            raise click.UsageError(str(error)) from None
    sms = AppletSms(sender, recipient, body, sid or new_sid(), date or exotel_now())
    settings = _settings(config_file, database_url=database_url)
    registry = _local_registry(settings)
    try:
        status = run(
            url=url,
            app=app,
            config_file=config_file,
            sms=sms,
            as_json=as_json,
            budget=budget,
            max_parts=max_parts,
            repeat=repeat,
            concurrency=concurrency,
            script=script,
            timeout=timeout,
            registry=registry,
        )
    except (AppLoadError, ConfigError) as error:
        raise click.ClickException(str(error)) from None
    sys.exit(status)
