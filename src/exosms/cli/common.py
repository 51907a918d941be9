"""What every command shares: the --config and --database options, settings, the database."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from exosms.config import (
    ConfigError,
    Settings,
    load_settings,
)
from exosms.dlt import Template, TemplateRegistry
from exosms.routing import Router
from exosms.store import Database, StoreUnavailable, open_database
from exosms.store.urls import DatabaseUrlError

CONFIG_OPTION = click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="TOML settings file (default: $EXOSMS_CONFIG, else ./exosms.toml if present).",
)


F = TypeVar("F", bound=Callable[..., Any])


DATABASE_OPTION = click.option(
    "--database", "database_url", help="Database URL, e.g. sqlite:///exosms.db."
)


def _settings_file_option(help_text: str) -> Callable[[F], F]:
    """``--file``: the settings file a command writes (default ./exosms.toml)."""
    return click.option(
        "--file",
        "path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=Path("exosms.toml"),
        show_default=True,
        help=help_text,
    )


def _settings(config_file: Path | None, **overrides: Any) -> Settings:
    try:
        return load_settings(config_file, **overrides)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None


def _migrate(settings: Settings) -> None:
    from exosms.store.migrate import upgrade

    try:
        upgrade(settings.database_url)
    except DatabaseUrlError as error:
        raise click.ClickException(str(error)) from None
    except Exception as error:
        from exosms.store.errors import reason

        # The driver's own line: not SQLAlchemy's wrapper, its SQL or its "Background" link.
        raise click.ClickException(f"cannot migrate the database: {reason(error)}") from None


def _local_registry(settings: Settings) -> TemplateRegistry | None:
    """The local DLT registry, when the configured database exists and holds templates."""
    from exosms.store.urls import parse_database_url

    try:
        parsed = parse_database_url(settings.database_url)
    except DatabaseUrlError:
        return None
    if parsed.sqlite_path is not None and not parsed.sqlite_path.is_file():
        return None  # no database here: nothing to check against, and nothing to create
    try:
        templates = _with_database(settings, lambda db: db.store.load_templates())
    except click.ClickException:
        return None
    return _registry(settings, templates) if templates else None


def _config_path(config_file: Path | None) -> Path | None:
    from exosms.config import resolve_config_file

    try:
        return resolve_config_file(config_file)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None


def _build_router(settings: Settings, config_file: Path | None) -> Router:
    from exosms.loading import AppLoadError
    from exosms.rules import RulesError, router_from_settings

    try:
        return router_from_settings(settings, config_file)
    except RulesError as error:
        lines = "\n  ".join(str(p) for p in error.problems)
        raise click.ClickException(f"the rules have problems:\n  {lines}") from None
    except AppLoadError as error:
        raise click.ClickException(str(error)) from None


T = TypeVar("T")


def _with_database(
    settings: Settings, work: Callable[[Database], Awaitable[T]], *, reads_only: bool = False
) -> T:
    """Migrate, open the database, run ``work`` with it, close it; errors become one line.

    ``reads_only``: a command that only reads (``messages``, the lists) never creates an
    embedded database that is not there: it says so instead."""
    if reads_only:
        _must_exist(settings)
    _migrate(settings)

    async def run() -> T:
        db = open_database(settings.database_url, pool_size=2)
        await db.open()
        try:
            return await work(db)
        finally:
            await db.close()

    try:
        return asyncio.run(run())
    except StoreUnavailable as error:
        raise click.ClickException(f"database unavailable: {error}") from None


def _must_exist(settings: Settings) -> None:
    from exosms.store.urls import parse_database_url

    try:
        parsed = parse_database_url(settings.database_url)
    except DatabaseUrlError as error:
        raise click.ClickException(str(error)) from None
    path = parsed.sqlite_path
    if path is not None and not path.is_file():
        raise click.ClickException(
            f"no database at {path}: nothing stored yet (run this where exosms serve runs,"
            " or give --database)"
        )


def _registry(settings: Settings, templates: list[Template]) -> TemplateRegistry:
    return TemplateRegistry(
        templates,
        var_max_len=settings.dlt.var_max_len,
        typed_max_len=settings.dlt.typed_var_max_len,
    )


def _when(epoch: float | None, timezone: str) -> str:
    """A time as every command prints it: in the ``timezone`` setting (India by default),
    as the inbox shows it, not in the machine's zone (UTC on most servers)."""
    if epoch is None:
        return "-"
    from zoneinfo import ZoneInfo

    return datetime.fromtimestamp(epoch, ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M:%S %Z")
