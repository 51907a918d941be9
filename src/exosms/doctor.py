"""``exosms doctor``: is this set-up right? Each check is one line, OK or the fix.

The database reachable and migrated; the webhook token set; ``[exotel] public_url`` set and
shaped right; DLT templates loaded and every fixed reply matching one; the Exotel API taking
the credentials (a read-only call); and the reply path answering Exotel's contract (the
simulator against the app in process). Nothing is changed, nothing is sent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from exosms.config import Settings


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the diagnosis."""

    name: str
    ok: bool
    said: str  # what was found, or what to do

    def line(self) -> str:
        """As the command prints it."""
        return f"{'OK ' if self.ok else 'FIX'}  {self.name}: {self.said}"


async def database(settings: Settings) -> Check:
    """Reachable, and at the newest migration."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy.ext.asyncio import create_async_engine

    from exosms.store.errors import reason
    from exosms.store.migrate import alembic_config
    from exosms.store.urls import parse_database_url

    parsed = parse_database_url(settings.database_url)
    if parsed.sqlite_path is not None and not parsed.sqlite_path.is_file():
        return Check(
            "database", False, f"no database at {parsed.sqlite_path}: run exosms db upgrade"
        )
    head = ScriptDirectory.from_config(alembic_config(settings.database_url)).get_current_head()
    engine = create_async_engine(parsed.async_url)
    try:
        async with engine.connect() as conn:
            current = await conn.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )
    except Exception as error:  # any driver's failure: say it in one line
        return Check("database", False, f"cannot connect: {reason(error)}")
    finally:
        await engine.dispose()
    if current != head:
        return Check(
            "database", False, f"at migration {current}, not {head}: run exosms db upgrade"
        )
    return Check("database", True, f"reachable, migrated ({head})")


def token(settings: Settings) -> Check:
    """The webhook's token, without which anyone may post SMS to the server."""
    if settings.auth.token is None:
        return Check(
            "token", False, "no [auth] token: anyone can call the webhook; run exosms init"
        )
    return Check("token", True, "[auth] token set (Exotel calls /exotel/sms/<token>)")


def public_url(settings: Settings) -> Check:
    """``[exotel] public_url``: where Exotel reaches the server (status callbacks, links)."""
    url = settings.exotel.public_url
    if not url:
        return Check(
            "public_url",
            False,
            "[exotel] public_url is not set: status callbacks and links cannot reach you",
        )
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.netloc:
        return Check("public_url", False, f"{url} should be https://your-host (Exotel needs https)")
    if parts.path.strip("/") or parts.query:
        return Check("public_url", False, f"{url}: give the host only, without a path")
    if parts.netloc.endswith("example.in") or parts.netloc.endswith("example.com"):
        return Check("public_url", False, f"{url} is the example: set your own host")
    return Check("public_url", True, url)


def dlt(templates: int, warnings: Callable[[], list[str]]) -> Check:
    """``templates`` loaded, and every fixed reply matching one (``warnings``: those that do
    not, as ``rules check`` says them)."""
    if not templates:
        return Check(
            "DLT",
            False,
            "no templates imported: operators drop SMS that match none; run exosms dlt import",
        )
    found = warnings()
    if found:
        listed = "; ".join(found)
        return Check("DLT", False, f"{len(found)} fixed replies match no template: {listed}")
    return Check("DLT", True, f"{templates} templates; every fixed reply matches one")


async def exotel(settings: Settings) -> Check:
    """The API takes the credentials: a read-only look-up of an SMS that does not exist."""
    from exosms.exotel.client import AccountError, AuthenticationError, ExotelError, Unavailable
    from exosms.sending import client_from_settings

    if not settings.exotel.is_configured:
        return Check(
            "Exotel API",
            False,
            "no [exotel] account_sid, api_key and api_token: webhook replies cannot be sent",
        )
    client = client_from_settings(settings.exotel)
    try:
        await client.details("exosms-doctor-check")
    except (AuthenticationError, AccountError) as error:
        return Check("Exotel API", False, f"Exotel refused the credentials: {error}")
    except Unavailable as error:
        return Check("Exotel API", False, f"no answer from {settings.exotel.api_url}: {error}")
    except ExotelError:
        pass  # not found: the account and key were accepted
    finally:
        await client.aclose()
    return Check("Exotel API", True, f"credentials accepted by {settings.exotel.api_url}")


async def reply_path(settings: Settings, config_file: Path | None) -> Check:
    """The app in process answers an SMS as Exotel's contract wants (no network)."""
    from exosms.exotel.caller import AppletSms
    from exosms.rules import router_from_settings
    from exosms.simulate import app_target, check_sms

    try:
        router = router_from_settings(settings, config_file)
    except Exception as error:  # rules or app that do not load: the reason, in a line
        return Check("reply path", False, f"the router does not load: {error}")
    async with app_target(router, config_file) as target:
        check = await check_sms(target, AppletSms(body="exosms doctor"), repeat=True)
    if not check.ok:
        problems = "; ".join(v.message for v in check.violations)
        return Check("reply path", False, f"the contract is broken: {problems}")
    return Check("reply path", True, "HEAD and GET answered to Exotel's contract")
