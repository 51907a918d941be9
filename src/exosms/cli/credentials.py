"""`exosms init` and `exosms password`: the webhook token and the inbox password, written to
the settings file with tomlkit (comments and layout kept)."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import click
import tomlkit
from tomlkit.exceptions import TOMLKitError

from exosms.cli.common import _settings, _settings_file_option


@click.command()
@click.option(
    "--public-url",
    help="Where Exotel will reach this server: https:// and the host (asked in a terminal).",
)
@click.option(
    "--path",
    "way",
    type=click.Choice(["applet", "webhook"]),
    help="How Exotel reaches you: the Send a Reply applet, or the SMS webhook (both printed"
    " when not given).",
)
@_settings_file_option("Settings file to write the token to.")
@click.option(
    "--inbox/--no-inbox",
    "ask_inbox",
    default=None,
    help="Ask for an inbox admin password (default: ask when run in a terminal).",
)
def init(public_url: str | None, way: str | None, path: Path, ask_inbox: bool | None) -> None:
    """Make a strong webhook token, save it with public_url, and print every URL to paste
    into Exotel, and where."""
    import secrets

    token = secrets.token_urlsafe(24)
    document = _read_toml(path)
    auth = document.get("auth")
    if auth is not None and auth.get("token"):
        raise click.ClickException(
            f"{path} already has [auth] token; remove it first to make a new one"
        )
    if public_url is None and sys.stdin.isatty():
        public_url = click.prompt("Where will Exotel reach this server (https://your-host)")
    if public_url is not None:
        public_url = _checked_public_url(public_url)
    _set_toml_value(path, "auth", "token", token, comment="made by exosms init; keep it secret")
    if public_url is not None:
        _set_toml_value(path, "exotel", "public_url", public_url)
    settings = _settings(path)
    base = public_url or "https://<your-host>"
    click.echo(f"wrote a new webhook token{' and public_url' if public_url else ''} to {path}")
    if public_url is None:
        click.echo("public_url is not set: run again with --public-url https://your-host")
    if way in (None, "applet"):
        click.echo("")
        click.echo("Send a Reply applet (Exotel dashboard > App Bazaar > your SMS app > Send a")
        click.echo("Reply > URL, instead of static text):")
        click.echo(f"  {base}{settings.applet_path}/{token}")
    if way in (None, "webhook"):
        click.echo("")
        click.echo("SMS webhook (the incoming-SMS URL of your ExoPhone, where your account has")
        click.echo("it); replies then go out through Exotel's send API: fill in [exotel]")
        click.echo("account_sid, api_key, api_token and sender, and api_url for Mumbai:")
        click.echo(f"  {base}/exotel/webhook/{token}")
        click.echo(f"Delivery reports come back to {base}/exotel/status/<token> by themselves.")
    click.echo("")
    click.echo("Requests without the token now get 401. Then: exosms doctor.")
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


def _checked_public_url(value: str) -> str:
    from urllib.parse import urlsplit

    url = value.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.netloc or parts.path or parts.query:
        raise click.BadParameter(
            f"{value!r}: https:// and the host only, e.g. https://sms.your-shop.in",
            param_hint="--public-url",
        )
    return url


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
    click.echo("A running exosms serve takes it within a second; other logins are signed out.")


def _read_toml(path: Path) -> tomlkit.TOMLDocument:
    try:
        return (
            tomlkit.parse(path.read_text(encoding="utf-8")) if path.exists() else tomlkit.document()
        )
    except (OSError, TOMLKitError) as error:
        raise click.ClickException(f"cannot read {path}: {error}") from None


def _set_toml_value(
    path: Path, table: str, key: str, value: str, *, comment: str | None = None
) -> None:
    """Set ``key = "value"`` in ``[table]`` of the TOML file at ``path``, keeping every other
    line, comment and the layout as they are (tomlkit); the file stays readable only by you."""
    document = _read_toml(path)
    section = document.get(table)
    if section is None:
        section = tomlkit.table()
        document.add(table, section)
    if not isinstance(section, tomlkit.items.Table):
        raise click.ClickException(f"cannot update {path}: {table} is not a [{table}] table")
    item = tomlkit.item(value)
    if comment:
        item.comment(comment)
    section[key] = item
    text = tomlkit.dumps(document)
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:  # never write a file we cannot read back
        raise click.ClickException(f"could not update {path}: {error}") from None
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)


@click.command()
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
