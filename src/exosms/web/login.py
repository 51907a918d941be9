"""Logging in to the inbox: the login page, the session cookie, CSRF, and the lockout.

A login makes a random session token, kept hashed in the database (logout really ends it)
and sent back as a signed, HttpOnly, SameSite=Lax cookie. Every POST carries the session's
CSRF token and must come from the same origin. Password checks are counted before they are
made, per address and for the account, in the database (:class:`~exosms.store.logins.Logins`).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlencode

from itsdangerous import BadSignature, TimestampSigner
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from exosms.config import InboxSettings
from exosms.passwords import verify_password
from exosms.store.base import StoreUnavailable
from exosms.store.logins import Logins
from exosms.store.users import ADMIN, FIRST_ADMIN, UserError, Users, user_name
from exosms.web.auth import Gatekeeper
from exosms.web.filters import BadFilter, check_text

log = logging.getLogger("exosms.inbox")

COOKIE = "exosms_session"
LOGIN_COOKIE = "exosms_login"
ACCOUNT = FIRST_ADMIN  # the lockout counts per account too
ADMIN_ONLY = "Only an admin can open this page (templates, opt-outs, users)."
# A hash checked when the name is unknown, so that a wrong name costs what a wrong password
# does (nobody learns which names exist by the time it takes).
_NO_SUCH_USER = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA$" + "A" * 43
OFF = "the inbox is off: set an admin password with `exosms password`\n"


@dataclass(frozen=True, slots=True)
class Login:
    """Who is logged in: their session's token and CSRF token, their name and role."""

    token: str
    csrf: str
    user: str = FIRST_ADMIN
    role: str = ADMIN

    @property
    def is_admin(self) -> bool:
        """Whether they may manage templates, opt-outs and users."""
        return self.role == ADMIN


Page = Callable[..., HTMLResponse]  # renders a template: (name, status, **context)


class LoginGate:
    """Who is logged in, the pages that need it, and the login and logout themselves."""

    def __init__(
        self,
        config: InboxSettings,
        logins: Logins,
        gatekeeper: Gatekeeper,
        signer: TimestampSigner | None,
        page: Page,
    ) -> None:
        self.config = config
        self.logins = logins
        self.users = Users(logins.engine)
        self.gatekeeper = gatekeeper
        self.signer = signer  # None: the inbox is off (no password is set)
        self.page = page

    def set_password_hash(self, stored: str | None) -> None:
        """A new first-admin password (``exosms password`` while serving): its hash signs
        the cookies, so every browser is signed out; ``None`` turns the inbox off."""
        from exosms.passwords import signing_key

        self.config = self.config.model_copy(update={"password_hash": stored})
        self.signer = (
            TimestampSigner(signing_key(stored), salt="exosms-session") if stored else None
        )

    def error_page(self, login: Login | None, status: int, message: str) -> HTMLResponse:
        return self.page("error.html", status, login=login, code=status, message=message)

    async def login_of(self, request: Request) -> Login | None:
        """The live login this request's cookie proves, or ``None``."""
        cookie = request.cookies.get(COOKIE)
        if not cookie or self.signer is None:
            return None
        try:
            token = self.signer.unsign(
                cookie, max_age=int(self.config.session_hours * 3600)
            ).decode()
        except (BadSignature, UnicodeDecodeError):
            return None
        found = await self.logins.session(token)
        if found is None:
            return None
        csrf, user, role = found
        return Login(token, csrf, user or FIRST_ADMIN, role)

    def _same_origin(self, request: Request) -> bool:
        origin = request.headers.get("origin")
        if origin is None:  # not sent by every client; the token is still checked
            return True
        host = request.headers.get("host", "")
        return origin in (f"http://{host}", f"https://{host}")

    def _csrf_ok(self, request: Request, form: FormData, expected: str) -> bool:
        given = form.get("csrf")
        if not isinstance(given, str) or not self._same_origin(request):
            return False
        return hmac.compare_digest(given.encode(), expected.encode())

    def guarded(
        self,
        handler: Callable[[Request, Login], Awaitable[Response]],
        *,
        post: bool = False,
        admin: bool = False,
        max_files: int = 0,
        max_part_size: int = 65536,
    ) -> Callable[[Request], Awaitable[Response]]:
        """A page that needs a login (and, for POST, the session's CSRF token; with
        ``admin``, an admin's login: 403 for an agent); a form may carry ``max_files`` files
        of at most ``max_part_size`` bytes each (none by default)."""

        async def endpoint(request: Request) -> Response:
            if self.signer is None:
                return PlainTextResponse(OFF, status_code=404)
            login: Login | None = None
            try:
                check_text(request)
                login = await self.login_of(request)
                if login is None:
                    if request.method in ("GET", "HEAD") and request.url.path != "/inbox/changes":
                        target = request.url.path + (
                            "?" + request.url.query if request.url.query else ""
                        )
                        query = urlencode({"next": target})
                        return RedirectResponse(f"/inbox/login?{query}", status_code=303)
                    return PlainTextResponse("log in first\n", status_code=401)
                if admin and not login.is_admin:
                    log.warning("inbox: %s (an agent) refused an admin page", login.user)
                    return self.error_page(login, 403, ADMIN_ONLY)
                if post:
                    form = await request.form(
                        max_files=max_files, max_fields=20, max_part_size=max_part_size
                    )
                    if not self._csrf_ok(request, form, login.csrf):
                        return PlainTextResponse(
                            "refused: missing or wrong CSRF token (reload the page)\n",
                            status_code=403,
                        )
                    check_text(request, form)
                    request.state.form = form
                return await handler(request, login)
            except BadFilter as error:
                return self.error_page(login, 400, str(error))
            except StoreUnavailable as error:
                log.error("inbox: database unavailable: %s", error)
                return PlainTextResponse("database unavailable, try again\n", status_code=503)

        return endpoint

    async def login_form(self, request: Request) -> Response:
        if self.signer is None:
            return PlainTextResponse(OFF, status_code=404)
        return self._login_page(request, None, 200)

    def _login_page(self, request: Request, error: str | None, status: int) -> Response:
        csrf = secrets.token_urlsafe(24)
        next_path = _local_path(request.query_params.get("next", ""))
        response = self.page(
            "login.html", status, login=None, csrf=csrf, error=error, next_path=next_path
        )
        assert self.signer is not None
        response.set_cookie(
            LOGIN_COOKIE,
            self.signer.sign(csrf).decode(),
            max_age=3600,
            path="/inbox",
            httponly=True,
            samesite="strict",
            secure=self.gatekeeper.is_https(request.scope),
        )
        return response

    async def login(self, request: Request) -> Response:
        if self.signer is None or self.config.password_hash is None:
            return PlainTextResponse(OFF, status_code=404)
        address = self.gatekeeper.client_address(request.scope)
        form = await request.form(max_files=0, max_fields=10, max_part_size=4096)
        given = form.get("csrf")
        try:
            expected = self.signer.unsign(request.cookies.get(LOGIN_COOKIE, ""), 3600).decode()
        except (BadSignature, UnicodeDecodeError):
            expected = ""
        if (
            not isinstance(given, str)
            or not expected
            or not hmac.compare_digest(given.encode(), expected.encode())
            or not self._same_origin(request)
        ):
            return PlainTextResponse(
                "refused: missing or wrong CSRF token (reload the login page)\n", status_code=403
            )
        raw_name = form.get("name")
        try:
            name = (
                user_name(raw_name) if isinstance(raw_name, str) and raw_name.strip() else ACCOUNT
            )
        except UserError:
            return self._login_page(request, "Wrong name or password.", 401)
        # The check is counted before it is made, in the database: parallel guesses and
        # several workers share one count.
        try:
            wait = await self.logins.reserve_login(
                address,
                self.config.lockout_attempts,
                self.config.lockout_seconds,
                account=(name, self.config.lockout_account_attempts),
            )
        except StoreUnavailable:
            return PlainTextResponse("database unavailable, try again\n", status_code=503)
        if wait > 0:
            log.warning("inbox login refused: %s is locked out for %.0f s", address, wait)
            minutes = max(1, round(wait / 60))
            return self._login_page(
                request, f"Too many failed logins: try again in {minutes} minutes.", 429
            )
        password = form.get("password")
        if name == ACCOUNT:
            stored: str | None = self.config.password_hash
        else:
            found = await self.users.password_hash(name)
            stored = found[1] if found else None
        ok = isinstance(password, str) and await asyncio.to_thread(
            verify_password, password[:1024], stored or _NO_SUCH_USER
        )
        if not ok or stored is None:
            log.warning("inbox login failed from %s", address)
            wrong = "Wrong password." if name == ACCOUNT else "Wrong name or password."
            return self._login_page(request, wrong, 401)
        await self.logins.login_succeeded(address, name)
        token = secrets.token_urlsafe(32)
        await self.logins.create_session(
            token,
            secrets.token_urlsafe(24),
            self.config.session_hours * 3600,
            user=None if name == ACCOUNT else name,
        )
        log.info("inbox login from %s as %s", address, name)
        next_value = form.get("next")
        target = _local_path(next_value if isinstance(next_value, str) else "") or "/inbox"
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            COOKIE,
            self.signer.sign(token).decode(),
            max_age=int(self.config.session_hours * 3600),
            path="/",
            httponly=True,
            samesite="lax",
            secure=self.gatekeeper.is_https(request.scope),
        )
        response.delete_cookie(LOGIN_COOKIE, path="/inbox")
        return response

    async def logout(self, request: Request, login: Login) -> Response:
        await self.logins.end_session(login.token)
        response = RedirectResponse("/inbox/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response


def _local_path(path: str) -> str:
    """``path`` if it is a page of the inbox (no open redirect to another site), else ''."""
    if path.startswith("/inbox") and not path.startswith("//") and "\\" not in path:
        return path
    return ""
