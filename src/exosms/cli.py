"""The ``exosms`` command. Thin: every command calls the library."""

from __future__ import annotations

import asyncio
import json
import logging.config
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar, cast

import click

from exosms.config import (
    ConfigError,
    Settings,
    load_settings,
    secret_values,
    settings_as_environment,
)
from exosms.dlt import Template, TemplateRegistry
from exosms.logs import logging_config
from exosms.routing import Router
from exosms.store import Database, StoredMessage, StoreUnavailable, open_database
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
        raise click.ClickException(f"cannot migrate the database: {error}") from None


@click.group()
@click.version_option(package_name="exosms")
def main() -> None:
    """exosms: answer the SMS your customers send to your Exotel number."""


@main.command()
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

    from exosms.web.protocol import EdgeLimits, protocol_factory

    settings = _settings(
        config_file, host=host, port=port, database_url=database_url, app=app, workers=workers
    )
    log_config = logging_config(settings.log_level, secret_values(settings))
    logging.config.dictConfig(log_config)
    resolved = _config_path(config_file)
    _build_router(settings, resolved)  # fail here, with every problem, not in a worker
    _migrate(settings)
    os.environ.update(settings_as_environment(settings))
    if resolved is not None:
        os.environ["EXOSMS_CONFIG"] = str(resolved.resolve())
    uvicorn.run(
        "exosms.web.app:app_from_environment",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop" if sys.platform != "win32" else "asyncio",
        # uvicorn calls `http` with its arguments; a partial carries our limits to workers.
        http=cast(Any, protocol_factory(EdgeLimits.from_settings(settings))),
        lifespan="on",
        access_log=False,
        server_header=False,
        proxy_headers=False,  # X-Forwarded-For is believed only from [auth] trusted_proxies
        log_config=log_config,
        timeout_keep_alive=int(max(1, settings.keep_alive_timeout)),
        # max_connections is enforced by the protocol, in the contract's shape.
    )


@main.command()
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


@main.group()
def rules() -> None:
    """The rules file: check it, and see which rule answers a message."""


@rules.command("check")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@CONFIG_OPTION
def rules_check(file: Path | None, config_file: Path | None) -> None:
    """Check FILE (default: the configured rules) and print every problem with its line."""
    from exosms.rules import RulesFile, context_for, load_rules

    settings = _settings(config_file)
    if file is not None:
        if not file.is_file():
            raise click.ClickException(f"{file} does not exist")
        found: RulesFile | None = RulesFile.from_path(file)
    else:
        found = load_rules(settings, _config_path(config_file))
    if found is None:
        raise click.ClickException(
            "no rules configured: set rules_file in exosms.toml or give a FILE"
        )
    problems = found.check(context_for(settings))
    for problem in problems:
        click.echo(str(problem))
    if problems:
        click.echo(f"{len(problems)} problem(s) in {found.source}")
        sys.exit(1)
    click.echo(f"{found.source}: {len(found.specs)} rules, no problems")


@rules.command("test")
@click.argument("text")
@click.option("--from", "sender", default="9052161119", show_default=True)
@click.option("--to", "recipient", default="56070", show_default=True)
@CONFIG_OPTION
@DATABASE_OPTION
def rules_test(
    text: str, sender: str, recipient: str, config_file: Path | None, database_url: str | None
) -> None:
    """Show which rule answers TEXT and the reply, without a server (nothing is stored)."""
    from exosms.exotel.caller import AppletSms
    from exosms.simulate import app_target, check_sms

    settings = _settings(config_file, database_url=database_url)
    router = _build_router(settings, _config_path(config_file))
    registry = _local_registry(settings)
    logging.getLogger("exosms").setLevel(logging.ERROR)  # the verdict is printed below

    async def run() -> tuple[str | None, StoredMessage | None]:
        async with app_target(router, config_file) as target:
            sms = AppletSms(sender=sender, recipient=recipient, body=text)
            check = await check_sms(target, sms, repeat=False, registry=registry)
            stored = await target.app.state.engine.store.lookup(sms.sms_sid)  # type: ignore[attr-defined]
            return check.reply, stored

    reply, stored = asyncio.run(run())
    rule = stored.rule if stored else None
    click.echo(f"rule:    {rule or '(none matched)'}")
    click.echo(f"outcome: {stored.outcome if stored else '-'}")
    click.echo(f"reply:   {reply if reply is not None else '(no reply)'}")
    if reply:
        from exosms.segments import segment

        parts = segment(reply)
        click.echo(f"parts:   {parts.encoding}, {parts.units} units, {parts.count} part(s)")
        if registry is not None:
            click.echo(f"DLT:     {registry.match(reply).describe()}")
    if stored is not None and stored.error:
        click.echo(f"error:   {stored.error}")


@main.command()
@click.option(
    "--public-url",
    default="https://sms.example.in",
    show_default=True,
    help="Where Exotel will reach this server (scheme and host).",
)
@_settings_file_option("Settings file to write the token to.")
@click.option(
    "--inbox/--no-inbox",
    "ask_inbox",
    default=None,
    help="Ask for an inbox admin password (default: ask when run in a terminal).",
)
def init(public_url: str, path: Path, ask_inbox: bool | None) -> None:
    """Make a strong webhook token, save it, and print the URL to paste into Exotel."""
    import secrets
    import tomllib

    token = secrets.token_urlsafe(24)
    if path.exists():
        try:
            existing = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise click.ClickException(f"cannot read {path}: {error}") from None
        if existing.get("auth", {}).get("token"):
            raise click.ClickException(
                f"{path} already has [auth] token; remove it first to make a new one"
            )
        if "auth" in existing:
            raise click.ClickException(
                f'{path} has an [auth] table: add token = "{token}" to it yourself'
            )
    with path.open("a", encoding="utf-8") as out:
        out.write(f'\n[auth]\n# made by exosms init; keep it secret\ntoken = "{token}"\n')
    path.chmod(0o600)
    settings = _settings(path)
    url = f"{public_url.rstrip('/')}{settings.applet_path}/{token}"
    click.echo(f"wrote a new webhook token to {path} (readable only by you)")
    click.echo("Paste this URL into Exotel's Send a Reply applet:")
    click.echo(f"  {url}")
    click.echo("Requests without the token now get 401.")
    if ask_inbox is None:
        ask_inbox = sys.stdin.isatty()
    if ask_inbox:
        click.echo("")
        click.echo("The inbox (/inbox) shows every message; it needs an admin password.")
        password = click.prompt(
            "Admin password (empty: no inbox for now)",
            default="",
            hide_input=True,
            show_default=False,
        )
        if password:
            _save_password(path, password, confirm=True)


def _save_password(path: Path, password: str, *, confirm: bool) -> None:
    from exosms.passwords import PasswordError, hash_password

    if confirm and click.prompt("Again", default="", hide_input=True, show_default=False) != (
        password
    ):
        raise click.ClickException("the two passwords differ; nothing was changed")
    try:
        hashed = hash_password(password)
    except PasswordError as error:
        raise click.ClickException(str(error)) from None
    _set_toml_value(path, "inbox", "password_hash", hashed)
    click.echo(f"saved the inbox password's hash (not the password) to {path}")
    click.echo("Restart exosms serve; then log in at /inbox. Other logins are signed out.")


def _set_toml_value(path: Path, table: str, key: str, value: str) -> None:
    """Set ``key = "value"`` in ``[table]`` of the TOML file at ``path``, keeping the rest."""
    import re
    import tomllib

    text = path.read_text(encoding="utf-8") if path.exists() else ""
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise click.ClickException(f"cannot read {path}: {error}") from None
    line = f'{key} = "{value}"'
    header = re.search(rf"(?m)^\[{re.escape(table)}\][ \t]*(#.*)?$", text)
    if header is None:
        text = text.rstrip("\n") + ("\n\n" if text.strip() else "") + f"[{table}]\n{line}\n"
    else:
        end = re.search(r"(?m)^\[", text[header.end() :])
        stop = header.end() + end.start() if end else len(text)
        section = text[header.end() : stop]
        pattern = re.compile(rf"(?m)^{re.escape(key)}[ \t]*=.*$")
        if pattern.search(section):
            section = pattern.sub(lambda _: line, section, count=1)
        else:
            section = "\n" + line + section
        text = text[: header.end()] + section + text[stop:]
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:  # never write a file we cannot read back
        raise click.ClickException(f"could not update {path}: {error}") from None
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)


@main.command()
@_settings_file_option("Settings file to write to.")
@click.option(
    "--api-token", is_flag=True, help="Also make a new bearer token for the JSON API (/api)."
)
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from standard input (one line) instead of asking twice.",
)
def password(path: Path, api_token: bool, password_stdin: bool) -> None:
    """Set the inbox admin password (only its scrypt hash is stored) and turn the inbox on."""
    if password_stdin:
        given = sys.stdin.readline().rstrip("\r\n")
        _save_password(path, given, confirm=False)
    else:
        given = click.prompt("New admin password", hide_input=True)
        _save_password(path, given, confirm=True)
    if api_token:
        import secrets

        token = secrets.token_urlsafe(32)
        _set_toml_value(path, "inbox", "api_token", token)
        click.echo(f"new API token (also in {path}): {token}")
        click.echo("Use it as: Authorization: Bearer <token>")


@main.group()
def optouts() -> None:
    """Senders who opted out: list, add, remove."""


def _optout_args(sender: str, recipient: str | None) -> tuple[str, str]:
    from exosms.numbers import normalise

    return normalise(sender), normalise(recipient) if recipient else "*"


@optouts.command("list")
@CONFIG_OPTION
@DATABASE_OPTION
def optouts_list(config_file: Path | None, database_url: str | None) -> None:
    """Every opt-out, newest first."""
    settings = _settings(config_file, database_url=database_url)
    rows = _with_database(settings, lambda db: db.store.list_optouts())
    if not rows:
        click.echo("no opt-outs")
    for row in rows:
        where = "all numbers" if row.recipient == "*" else row.recipient
        click.echo(f"{row.sender}  from {where}  since {_when(row.created_at)}  ({row.source})")


def _optout_command(opt_out: bool, help_text: str, done: str, unchanged: str) -> None:
    @optouts.command("add" if opt_out else "remove", help=help_text)
    @click.argument("sender")
    @click.option("--to", "recipient", help="Only this Exotel number (default: all).")
    @CONFIG_OPTION
    @DATABASE_OPTION
    def command(
        sender: str, recipient: str | None, config_file: Path | None, database_url: str | None
    ) -> None:
        settings = _settings(config_file, database_url=database_url)
        who, where = _optout_args(sender, recipient)
        changed = _with_database(settings, lambda db: db.store.set_optout(who, where, opt_out))
        click.echo(f"{who} {done if changed else unchanged}")


_optout_command(
    True, "Opt SENDER out: no more replies to them.", "opted out", "was already opted out"
)
_optout_command(False, "Opt SENDER back in.", "opted back in", "was not opted out")


_AGE_UNITS = {"min": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}
AGE_FORMS = "a number with min, h, d or w (e.g. 90d, 12h, 30min, 2w)"


def parse_age(text: str) -> float:
    """``--older-than``: seconds in ``90d``, ``12h``, ``30min``, ``2w``. A bare number and
    ``m`` are refused: one reads as minutes or months, and a prune is not undone."""
    import re

    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(min|h|d|w)\s*", text)
    if found is None:
        raise ValueError(f"{text!r} is not an age: use {AGE_FORMS}")
    age = float(found[1]) * _AGE_UNITS[found[2]]
    if age <= 0:
        raise ValueError(f"{text!r} would delete every message: use {AGE_FORMS}")
    return age


@main.command()
@click.option("--older-than", "older_than", required=True, help=f"Age: {AGE_FORMS}.")
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@click.option("--yes", is_flag=True, help="Do not ask in a terminal before deleting.")
@click.option("--batch", default=1000, show_default=True, type=click.IntRange(1, 100_000))
@CONFIG_OPTION
@DATABASE_OPTION
def prune(
    older_than: str,
    dry_run: bool,
    yes: bool,
    batch: int,
    config_file: Path | None,
    database_url: str | None,
) -> None:
    """Delete messages older than a given age, in small batches (no long locks)."""
    import time

    try:
        age = parse_age(older_than)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--older-than") from None
    settings = _settings(config_file, database_url=database_url)
    before = time.time() - age
    count = _with_database(settings, lambda db: db.store.count_before(before))
    if dry_run:
        click.echo(f"would delete {count} message(s) received before {_when(before)}")
        return
    if count and sys.stdin.isatty() and not yes:
        click.echo(f"{count} message(s) received before {_when(before)} will be deleted.")
        click.confirm("Delete them?", abort=True)
    deleted = _with_database(settings, lambda db: db.store.prune(before, batch))
    click.echo(f"deleted {deleted} message(s) received before {_when(before)}")


@main.command()
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
        worker = worker_from_settings(settings, db.outbox, registry)
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


@main.group(invoke_without_command=True)
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
    rows = _with_database(settings, lambda db: db.outbox.recent(limit))
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
    row = _with_database(settings, lambda db: db.outbox.decide(row_id, resend))
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


@main.command("fake-exotel")
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


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@CONFIG_OPTION
@DATABASE_OPTION
def db_upgrade(config_file: Path | None, database_url: str | None) -> None:
    """Create the tables, or bring them up to date. Safe to run again."""
    settings = _settings(config_file, database_url=database_url)
    _migrate(settings)
    click.echo("database is up to date")


T = TypeVar("T")


def _with_database(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    """Migrate, open the database, run ``work`` with it, close it; errors become one line."""
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


def _registry(settings: Settings, templates: list[Template]) -> TemplateRegistry:
    return TemplateRegistry(
        templates,
        var_max_len=settings.dlt.var_max_len,
        typed_max_len=settings.dlt.typed_var_max_len,
    )


@main.group()
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


@dlt.command("list")
@CONFIG_OPTION
@DATABASE_OPTION
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def dlt_list(config_file: Path | None, database_url: str | None, as_json: bool) -> None:
    """List the approved templates in the registry."""
    settings = _settings(config_file, database_url=database_url)
    templates = _with_database(settings, lambda db: db.store.load_templates())
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
    registry = _registry(settings, _with_database(settings, lambda db: db.store.load_templates()))
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


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch).astimezone().strftime("%Y-%m-%d %H:%M:%S%z")


@main.command()
@CONFIG_OPTION
@DATABASE_OPTION
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def messages(config_file: Path | None, database_url: str | None, limit: int, as_json: bool) -> None:
    """List recent messages, newest first."""
    settings = _settings(config_file, database_url=database_url)
    rows = _with_database(settings, lambda db: db.store.recent(limit))
    if as_json:
        for row in rows:
            click.echo(json.dumps(asdict(row), ensure_ascii=False))
        return
    if not rows:
        click.echo("no messages yet")
        return
    for row in rows:
        reply = "(no reply)" if row.reply is None else repr(row.reply)
        click.echo(
            f"{_when(row.received_at)}  {row.sms_sid}  {row.sender} -> {row.recipient}  "
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
