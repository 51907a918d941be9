"""`exosms serve` and `exosms fake-exotel`: the servers."""

from __future__ import annotations

import logging.config
import os
import signal
import sys
from pathlib import Path
from typing import Any, cast

import click

from exosms.cli.common import (
    CONFIG_OPTION,
    DATABASE_OPTION,
    _build_router,
    _config_path,
    _local_registry,
    _migrate,
    _settings,
)
from exosms.config import (
    Settings,
    secret_values,
    settings_as_environment,
)
from exosms.logs import logging_config
from exosms.metrics import multiprocess_dir


@click.command()
@CONFIG_OPTION
@click.option("--host", help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (default 8000).")
@DATABASE_OPTION
@click.option("--app", "app", help="Your Router as module:attribute (default: the demo).")
@click.option("--workers", type=int, help="Server processes (default 1).")
def serve(
    config_file: Path | None,
    host: str | None,
    port: int | None,
    database_url: str | None,
    app: str | None,
    workers: int | None,
) -> None:
    """Start the server that Exotel's Send-a-Reply applet calls."""
    import uvicorn

    settings = _settings(
        config_file, host=host, port=port, database_url=database_url, app=app, workers=workers
    )
    log_config = logging_config(settings.log_level, secret_values(settings), settings.log_format)
    logging.config.dictConfig(log_config)
    resolved = _config_path(config_file)
    _build_router(settings, resolved)  # fail here, with every problem, not in a worker
    _check_destinations(settings)
    _migrate(settings)
    os.environ.update(settings_as_environment(settings))
    if resolved is not None:
        os.environ["EXOSMS_CONFIG"] = str(resolved.resolve())
    # uvicorn re-raises the SIGTERM it caught once it has shut down: as SystemExit, so that
    # what serve set up (the forwarding process, the metrics directory) is cleaned up.
    signal.signal(signal.SIGTERM, _exit_when_terminated)
    forwarding = None
    if settings.forwarding.destinations and settings.forwarding.run == "process":
        from exosms.cli.forwarding_process import ForwardingProcess

        forwarding = ForwardingProcess()
        forwarding.start()
    try:
        if settings.metrics.token is not None:
            # Every worker writes its counts there; removed when the server stops.
            with multiprocess_dir():
                _run(uvicorn, settings, log_config)
        else:
            _run(uvicorn, settings, log_config)
    finally:
        if forwarding is not None:
            forwarding.stop()


def _exit_when_terminated(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _run(uvicorn: Any, settings: Settings, log_config: dict[str, Any]) -> None:
    from exosms.web.dlt_page import UPLOAD_PATH
    from exosms.web.protocol import EdgeLimits, protocol_factory

    config = uvicorn.Config(
        "exosms.web.app:app_from_environment",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop" if sys.platform != "win32" else "asyncio",
        # uvicorn calls `http` with its arguments; a partial carries our limits to workers.
        http=cast(Any, protocol_factory(EdgeLimits.from_settings(settings, (UPLOAD_PATH,)))),
        lifespan="on",
        access_log=False,
        server_header=False,
        proxy_headers=False,  # X-Forwarded-For is believed only from [auth] trusted_proxies
        log_config=log_config,
        timeout_keep_alive=int(max(1, settings.keep_alive_timeout)),
        # max_connections is enforced by the protocol, in the contract's shape.
    )
    if settings.workers == 1:
        server = uvicorn.Server(config)  # what uvicorn.run does for one process
        server.run()
        if not server.started:
            sys.exit(3)  # uvicorn's code for an app that failed to start
        return
    from exosms.cli.workers import ExplainedMultiprocess

    ExplainedMultiprocess(config, sockets=[config.bind_socket()]).run()


@click.command("fake-exotel")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8090, show_default=True)
@click.option("--account-sid", default="acme", show_default=True)
@click.option("--api-key", default="key", show_default=True)
@click.option("--api-token", default="token", show_default=True)
@CONFIG_OPTION
@DATABASE_OPTION
def fake_exotel(
    host: str,
    port: int,
    account_sid: str,
    api_key: str,
    api_token: str,
    config_file: Path | None,
    database_url: str | None,
) -> None:
    """Run a fake Exotel for local development and tests (docs/exotel-api.md)."""
    import uvicorn

    from exosms.exotel.fake import FakeExotel

    settings = _settings(config_file, database_url=database_url)
    fake = FakeExotel(account_sid, api_key, api_token, registry=_local_registry(settings))
    click.echo(
        f"fake Exotel on http://{host}:{port} (account {account_sid}); set [exotel] api_url to it",
        err=True,
    )
    uvicorn.run(fake.app(), host=host, port=port, log_level="warning", access_log=False)


def _check_destinations(settings: Settings) -> None:
    """Fail at start, in one line, when a destination's client library is missing."""
    from exosms.forwarding.destination import MissingExtra
    from exosms.forwarding.setup import destination_of

    for destination in settings.forwarding.destinations:
        try:
            destination_of(destination)
        except MissingExtra as error:
            raise click.ClickException(str(error)) from None
