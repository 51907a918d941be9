"""The inbox: server-rendered pages under /inbox, for the people who run the SMS line.

Off (404) until an admin password hash is configured. A login makes a random session token,
kept hashed in the database (logout really ends it) and sent back as a signed, HttpOnly,
SameSite=Lax cookie. Every POST carries the session's CSRF token. Every page is rendered by
Jinja2 with autoescaping: what customers write is always shown as text.
"""

from __future__ import annotations

import asyncio
import csv
import hmac
import io
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from itsdangerous import BadSignature, TimestampSigner
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.datastructures import FormData, QueryParams
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from exosms.config import Settings
from exosms.engine import ReplyEngine, Trial
from exosms.passwords import signing_key, verify_password
from exosms.store.base import StoreUnavailable
from exosms.store.inbox import DLT_VERDICTS, OUTCOMES, Filters, InboxQueries
from exosms.store.logins import Logins
from exosms.web import present
from exosms.web.auth import Gatekeeper

log = logging.getLogger("exosms.inbox")

HERE = Path(__file__).resolve().parent
COOKIE = "exosms_session"
LOGIN_COOKIE = "exosms_login"
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}
ACCOUNT = "admin"  # the one inbox account, for now; the lockout counts per account too
OFF = "the inbox is off: set an admin password with `exosms password`\n"
MAX_PAGE = 500


class BadFilter(ValueError):
    """A search parameter that makes no sense; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Login:
    token: str
    csrf: str


def parse_filters(params: QueryParams | FormData, zone: ZoneInfo) -> Filters:
    """Filters from a query string. Dates are days (YYYY-MM-DD) in the display zone; ``to``
    includes its whole day."""

    def get(name: str) -> str:
        if len(params.getlist(name)) > 1:
            raise BadFilter(f"{name}: given more than once")
        value = params.get(name)
        return value.strip() if isinstance(value, str) else ""

    def day(name: str) -> float | None:
        value = get(name)
        if not value:
            return None
        try:
            parsed = date.fromisoformat(value)
        except ValueError:
            raise BadFilter(f"{name}: {value!r} is not a date (YYYY-MM-DD)") from None
        return datetime(parsed.year, parsed.month, parsed.day, tzinfo=zone).timestamp()

    outcome, dlt = get("outcome"), get("dlt")
    if outcome and outcome not in OUTCOMES:
        raise BadFilter(f"outcome: {outcome!r} is not one of {', '.join(OUTCOMES)}")
    if dlt and dlt not in DLT_VERDICTS:
        raise BadFilter(f"dlt: {dlt!r} is not one of {', '.join(DLT_VERDICTS)}")
    text = get("q")
    if len(text) > 200:
        raise BadFilter("q: at most 200 characters")
    number = get("number")
    if len(number) > 32:
        raise BadFilter("number: at most 32 characters")
    rule = get("rule")
    if len(rule) > 200:
        raise BadFilter("rule: at most 200 characters")
    until = day("to")
    return Filters(
        text=text,
        number=number,
        since=day("from"),
        until=until + 86400 if until is not None else None,
        outcome=outcome,
        rule=rule,
        dlt=dlt,
    )


MAX_ID = 2**63 - 1  # ids are 64-bit on every database (migration 0011)


def parse_int(
    params: QueryParams | FormData, name: str, default: int | None, low: int, high: int
) -> int | None:
    """A bounded whole number written in ASCII digits (``int()`` alone also takes ``١٢``,
    ``1_000`` and spaces)."""
    if name not in params:
        return default
    if len(params.getlist(name)) > 1:
        raise BadFilter(f"{name}: given more than once")
    value = params[name]
    if not isinstance(value, str):
        raise BadFilter(f"{name}: not a whole number")
    digits = value[1:] if value.startswith("-") else value
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 19:
        raise BadFilter(f"{name}: {value[:40]!r} is not a whole number")
    number = int(value)
    if not low <= number <= high:
        raise BadFilter(f"{name}: must be between {low} and {high}")
    return number


def check_text(request: Request, form: FormData | None = None) -> None:
    """Refuse (400) a NUL character anywhere in the path, the query or the form: no
    database stores one, and PostgreSQL refuses it with an error."""
    for name, value in request.path_params.items():
        if "\x00" in str(value):
            raise BadFilter(f"{name}: contains a NUL character")
    for name, value in request.query_params.multi_items():
        if "\x00" in name or "\x00" in value:
            raise BadFilter(f"{name[:40]!r}: contains a NUL character")
    for name, item in form.multi_items() if form is not None else ():
        if "\x00" in name or (isinstance(item, str) and "\x00" in item):
            raise BadFilter(f"{name[:40]!r}: contains a NUL character")


def filter_query(params: QueryParams, **changes: Any) -> str:
    """The query string of ``params`` with ``changes`` (None removes a parameter)."""
    keep = {key: value for key, value in params.items() if value}
    for key, value in changes.items():
        if value is None:
            keep.pop(key, None)
        else:
            keep[key] = str(value)
    return urlencode(keep)


class Inbox:
    """The /inbox pages, the login, and what /api shares with them (access, filters)."""

    def __init__(
        self,
        settings: Settings,
        engine: ReplyEngine,
        gatekeeper: Gatekeeper,
        queries: InboxQueries,
        logins: Logins,
    ) -> None:
        self.settings = settings
        self.config = settings.inbox
        self.engine = engine
        self.queries = queries
        self.logins = logins
        self.gatekeeper = gatekeeper
        self.zone = ZoneInfo(settings.timezone)
        self.clock = present.Clock(self.zone)
        self.signer = (
            TimestampSigner(signing_key(self.config.password_hash), salt="exosms-session")
            if self.config.password_hash
            else None
        )
        self.templates = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.globals.update(
            clock=self.clock,
            why=present.why,
            outcome_of=present.outcome_of,
            dlt_verdict=present.dlt_verdict,
            labels=present.OUTCOME_LABELS,
            guard_reasons=present.GUARD_REASONS,
            colours=present.OUTCOME_COLOURS,
            outcomes=OUTCOMES,
            dlt_verdicts=DLT_VERDICTS,
            poll_ms=int(self.config.poll_seconds * 1000),
        )

    async def warm_up(self) -> None:
        await asyncio.sleep(1.0)
        try:
            await self.queries.stats(utc_offset=self.clock.utc_offset())
        except StoreUnavailable as error:
            log.warning("inbox overview not prepared: %s", error)

    # -- access ---------------------------------------------------------------------------

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
        csrf = await self.logins.session_csrf(token)
        return Login(token, csrf) if csrf is not None else None

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

    def page(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = self.templates.get_template(name).render(**context)
        return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)

    def error_page(self, login: Login | None, status: int, message: str) -> HTMLResponse:
        return self.page("error.html", status, login=login, code=status, message=message)

    def guarded(
        self, handler: Callable[[Request, Login], Awaitable[Response]], *, post: bool = False
    ) -> Callable[[Request], Awaitable[Response]]:
        """A page that needs a login (and, for POST, the session's CSRF token)."""

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
                if post:
                    form = await request.form(max_files=0, max_fields=20, max_part_size=65536)
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

    # -- login and logout -----------------------------------------------------------------

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
        # The check is counted before it is made, in the database: parallel guesses and
        # several workers share one count.
        try:
            wait = await self.logins.reserve_login(
                address,
                self.config.lockout_attempts,
                self.config.lockout_seconds,
                account=(ACCOUNT, self.config.lockout_account_attempts),
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
        ok = isinstance(password, str) and await asyncio.to_thread(
            verify_password, password[:1024], self.config.password_hash
        )
        if not ok:
            log.warning("inbox login failed from %s", address)
            return self._login_page(request, "Wrong password.", 401)
        await self.logins.login_succeeded(address, ACCOUNT)
        token = secrets.token_urlsafe(32)
        await self.logins.create_session(
            token, secrets.token_urlsafe(24), self.config.session_hours * 3600
        )
        log.info("inbox login from %s", address)
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

    # -- pages ----------------------------------------------------------------------------

    async def conversations(self, request: Request, login: Login) -> Response:
        context = await self._conversations_context(request)
        return self.page("conversations.html", login=login, **context)

    async def conversations_fragment(self, request: Request, login: Login) -> Response:
        context = await self._conversations_context(request)
        return self.page("_conversations.html", login=login, **context)

    async def _conversations_context(self, request: Request) -> dict[str, Any]:
        params = request.query_params
        before = parse_int(params, "before", None, 1, MAX_ID)
        number = params.get("number", "").strip()[:32]
        # The newest id first: the rows read after it include it, so the page's live updates
        # (which wait for an id past this one) miss nothing.
        latest = await self.queries.latest_id()
        rows = await self.queries.conversations(before=before, limit=50, number=number)
        older = filter_query(params, before=rows[-1].last_message_id) if len(rows) == 50 else None
        return {
            "rows": rows,
            "number": number,
            "older": older,
            "latest": latest,
            "unread": await self.queries.unread_count(),
            "live": before is None,
        }

    async def changes(self, request: Request, login: Login) -> Response:
        latest = await self.queries.latest_id()
        return JSONResponse({"latest": latest}, headers={"cache-control": "no-store"})

    async def thread(self, request: Request, login: Login) -> Response:
        context = await self._thread_context(request)
        if context is None:
            return self.error_page(login, 404, "No messages from this number.")
        return self.page("thread.html", login=login, **context)

    async def thread_fragment(self, request: Request, login: Login) -> Response:
        context = await self._thread_context(request)
        if context is None:
            return self.error_page(login, 404, "No messages from this number.")
        return self.page("_thread.html", login=login, **context)

    def _thread_or_mark_read(self) -> Callable[[Request], Awaitable[Response]]:
        # One route for both methods, so that a 405 lists both in `Allow`.
        show, mark = self.guarded(self.thread), self.guarded(self.mark_read, post=True)

        async def endpoint(request: Request) -> Response:
            return await (mark if request.method == "POST" else show)(request)

        return endpoint

    async def mark_read(self, request: Request, login: Login) -> Response:
        """POST: the conversation read up to ``upto`` (opening it with GET changes nothing;
        the page posts this when a person has it in view)."""
        sender = request.path_params["sender"]
        form: FormData = request.state.form
        upto = parse_int(form, "upto", None, 1, MAX_ID)
        if upto is None:
            return PlainTextResponse("upto: the id of the newest message read\n", status_code=400)
        if await self.queries.conversation(sender) is None:
            return PlainTextResponse("no messages from this number\n", status_code=404)
        await self.queries.mark_read(sender, upto)
        if request.headers.get("x-exosms-fetch") == "1":
            return Response(status_code=204)
        return RedirectResponse(
            "/inbox/c/" + quote(sender, safe="") + "#m" + str(upto), status_code=303
        )

    async def _thread_context(self, request: Request) -> dict[str, Any] | None:
        sender = request.path_params["sender"]
        conversation = await self.queries.conversation(sender)
        if conversation is None:
            return None
        before = parse_int(request.query_params, "before", None, 1, MAX_ID)
        latest = await self.queries.latest_id()  # before the messages: see _conversations_context
        items = await self.queries.thread(sender, before=before, limit=100)
        older = items[-1][0].id if len(items) == 100 else None
        return {
            "conversation": conversation,
            "items": list(reversed(items)),
            "older": older,
            "latest": latest,
            "live": before is None,
        }

    async def message(self, request: Request, login: Login) -> Response:
        raw = request.path_params["id"]
        message_id = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 19 else 0
        found = await self.queries.message(message_id) if 0 < message_id <= MAX_ID else None
        if found is None:
            return self.error_page(login, 404, "No such message.")
        message, delivery = found
        events = (
            await self.queries.delivery_events(delivery.exotel_sid)
            if delivery and delivery.exotel_sid
            else []
        )
        fields = [(name, getattr(message, name)) for name in message.__dataclass_fields__]
        return self.page(
            "message.html",
            login=login,
            m=message,
            delivery=delivery,
            events=events,
            fields=fields,
        )

    async def search(self, request: Request, login: Login) -> Response:
        params = request.query_params
        filters = parse_filters(params, self.zone)
        before = parse_int(params, "before", None, 1, MAX_ID)
        started = time.perf_counter()
        rows = await self.queries.search(filters, before=before, limit=50)
        took_ms = (time.perf_counter() - started) * 1000
        older = filter_query(params, before=rows[-1].id) if len(rows) == 50 else None
        export = filter_query(params, before=None)
        return self.page(
            "search.html",
            login=login,
            rows=rows,
            params=params,
            rules=await self.queries.rules(),
            older=older,
            export=export,
            took_ms=took_ms,
            searched=not filters.is_empty or before is not None,
        )

    async def export(self, request: Request, login: Login) -> Response:
        filters = parse_filters(request.query_params, self.zone)
        return export_response(self.queries, filters, request.path_params["kind"], self.zone)

    async def overview(self, request: Request, login: Login) -> Response:
        stats = await self.queries.stats(utc_offset=self.clock.utc_offset())
        outcomes = sorted(stats.outcomes.items(), key=lambda item: -item[1])
        return self.page(
            "overview.html",
            login=login,
            stats=stats,
            hourly=present.hourly_chart(stats, self.clock),
            outcome_chart=present.horizontal_bars(outcomes, colours=present.OUTCOME_COLOURS),
            keyword_chart=present.horizontal_bars(stats.top_keywords),
            rule_chart=present.horizontal_bars(stats.top_rules),
            latency_chart=present.horizontal_bars(
                [
                    (name, round(value))
                    for name, value in stats.latency_ms.items()
                    if value is not None
                ]
            ),
        )

    async def try_form(self, request: Request, login: Login) -> Response:
        # ?sender= and ?recipient= come from a conversation's "try a message as them" link.
        params = request.query_params
        return self.page(
            "try.html",
            login=login,
            result=None,
            sender=params.get("sender", "")[:64],
            recipient=params.get("recipient", "")[:64],
            body="",
            error=None,
        )

    async def try_post(self, request: Request, login: Login) -> Response:
        form: FormData = request.state.form
        sender = _field(form, "sender") or "9052161119"
        recipient = _field(form, "recipient") or "56070"
        body = _field(form, "body")
        error = None
        result = None
        if len(body) > self.settings.max_body_chars:
            error = f"the message is longer than {self.settings.max_body_chars} characters"
        elif len(sender) > 64 or len(recipient) > 64:
            error = "numbers have at most 64 characters"
        else:
            trial = await try_message(self.engine, self.queries, sender, recipient, body)
            result = trial.as_dict()
        return self.page(
            "try.html",
            400 if error else 200,
            login=login,
            result=result,
            sender=sender,
            recipient=recipient,
            body=body,
            error=error,
        )

    def routes(self) -> list[BaseRoute]:
        g = self.guarded
        return [
            Route("/inbox", g(self.conversations), methods=["GET"]),
            Route("/inbox/", lambda request: RedirectResponse("/inbox", 308), methods=["GET"]),
            Route("/inbox/login", self.login_form, methods=["GET"]),
            Route("/inbox/login", self.login, methods=["POST"]),
            Route("/inbox/logout", g(self.logout, post=True), methods=["POST"]),
            Route("/inbox/changes", g(self.changes), methods=["GET"]),
            Route("/inbox/fragments/conversations", g(self.conversations_fragment)),
            # `path`: a sender may hold any character, `/` included (encoded or not).
            Route("/inbox/fragments/c/{sender:path}", g(self.thread_fragment), methods=["GET"]),
            Route("/inbox/c/{sender:path}", self._thread_or_mark_read(), methods=["GET", "POST"]),
            Route("/inbox/m/{id}", g(self.message), methods=["GET"]),
            Route("/inbox/search", g(self.search), methods=["GET"]),
            Route("/inbox/export.{kind:str}", g(self.export), methods=["GET"]),
            Route("/inbox/overview", g(self.overview), methods=["GET"]),
            Route("/inbox/try", g(self.try_form), methods=["GET"]),
            Route("/inbox/try", g(self.try_post, post=True), methods=["POST"]),
            Mount("/inbox/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]


async def try_message(
    engine: ReplyEngine, queries: InboxQueries, sender: str, recipient: str, body: str
) -> Trial:
    from exosms.numbers import normalise

    opted = await queries.is_opted_out(normalise(sender), normalise(recipient))
    return await engine.try_message(sender, recipient, body, opted_out=opted)


def export_response(queries: InboxQueries, filters: Filters, kind: str, zone: ZoneInfo) -> Response:
    """The filtered messages as CSV or JSONL, streamed (a thousand rows per query)."""
    stamp = datetime.now(zone).strftime("%Y%m%d-%H%M")

    async def csv_rows() -> AsyncIterator[bytes]:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(present.EXPORT_FIELDS)
        yield "\ufeff".encode() + _drain(out)  # the BOM: Excel then reads UTF-8 (Hindi)
        count = 0
        async for message in queries.stream(filters):
            data = present.message_json(message, zone=zone)
            writer.writerow(
                [present.spreadsheet_safe(data.get(name)) for name in present.EXPORT_FIELDS]
            )
            count += 1
            if count % 500 == 0:
                yield _drain(out)
        yield _drain(out)

    async def jsonl_rows() -> AsyncIterator[bytes]:
        lines: list[str] = []
        async for message in queries.stream(filters):
            lines.append(json.dumps(present.message_json(message, zone=zone), ensure_ascii=False))
            if len(lines) == 500:
                yield ("\n".join(lines) + "\n").encode()
                lines = []
        if lines:
            yield ("\n".join(lines) + "\n").encode()

    if kind == "csv":
        media, body, suffix = "text/csv; charset=utf-8", csv_rows(), "csv"
    elif kind == "jsonl":
        media, body, suffix = "application/x-ndjson; charset=utf-8", jsonl_rows(), "jsonl"
    else:
        raise BadFilter(f"format: {kind!r} is not csv or jsonl")
    return StreamingResponse(
        body,
        media_type=media,
        headers={
            "content-disposition": f'attachment; filename="exosms-messages-{stamp}.{suffix}"',
            "cache-control": "no-store",
            "x-content-type-options": "nosniff",
        },
    )


def _drain(out: io.StringIO) -> bytes:
    data = out.getvalue().encode()
    out.seek(0)
    out.truncate()
    return data


def _field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _local_path(path: str) -> str:
    """``path`` if it is a page of the inbox (no open redirect to another site), else ''."""
    if path.startswith("/inbox") and not path.startswith("//") and "\\" not in path:
        return path
    return ""
