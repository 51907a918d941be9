"""The inbox: server-rendered pages under /inbox, for the people who run the SMS line.

Off (404) until an admin password hash is configured; logging in is :mod:`exosms.web.login`.
Every page is rendered by Jinja2 with autoescaping: what customers write is always shown as
text. Query strings are checked by :mod:`exosms.web.filters`; downloads are
:mod:`exosms.web.export`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from itsdangerous import TimestampSigner
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from exosms.config import InboxSettings
from exosms.engine import ReplyEngine, Trial
from exosms.passwords import signing_key
from exosms.store.base import StoreUnavailable
from exosms.store.contacts import Contacts
from exosms.store.hand_sent import HandSentQueries, interleave
from exosms.store.inbox import DLT_VERDICTS, OUTCOMES, VIEWS, InboxQueries
from exosms.store.logins import Logins
from exosms.store.users import FIRST_ADMIN
from exosms.web import present
from exosms.web.auth import Gatekeeper
from exosms.web.compose import Composer
from exosms.web.export import export_response
from exosms.web.filters import (
    MAX_ID,
    filter_query,
    parse_filters,
    parse_int,
)
from exosms.web.login import Login, LoginGate

log = logging.getLogger("exosms.inbox")

HERE = Path(__file__).resolve().parent
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}
MAX_PAGE = 500


class Inbox:
    """The /inbox pages, the login, and what /api shares with them (access, filters)."""

    def __init__(
        self,
        config: InboxSettings,
        engine: ReplyEngine,
        gatekeeper: Gatekeeper,
        queries: InboxQueries,
        logins: Logins,
        *,
        composer: Composer | None = None,
        timezone: str = "Asia/Kolkata",
        max_body_chars: int = 1600,
    ) -> None:
        """``composer``: replying by hand (without it, the thread has no compose box)."""
        self.config = config
        self.composer = composer
        self.hand_sent = HandSentQueries(queries.engine)
        self.max_body_chars = max_body_chars  # what /inbox/try and /api/try take
        self.engine = engine
        self.queries = queries
        self.logins = logins
        self.gatekeeper = gatekeeper
        self.zone = ZoneInfo(timezone)
        self.clock = present.Clock(self.zone)
        self.signer = (
            TimestampSigner(signing_key(self.config.password_hash), salt="exosms-session")
            if self.config.password_hash
            else None
        )
        self.gate = LoginGate(self.config, logins, gatekeeper, self.signer, self.page)
        self.login_of = self.gate.login_of
        self.guarded = self.gate.guarded
        self.error_page = self.gate.error_page
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

    def page(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = self.templates.get_template(name).render(**context)
        return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)

    # -- pages ----------------------------------------------------------------------------

    async def conversations(self, request: Request, login: Login) -> Response:
        context = await self._conversations_context(request, login)
        return self.page("conversations.html", login=login, **context)

    async def conversations_fragment(self, request: Request, login: Login) -> Response:
        context = await self._conversations_context(request, login)
        return self.page("_conversations.html", login=login, **context)

    async def _conversations_context(self, request: Request, login: Login) -> dict[str, Any]:
        params = request.query_params
        before = parse_int(params, "before", None, 1, MAX_ID)
        number = params.get("number", "").strip()[:32]
        view = params.get("view", "")
        if view not in VIEWS:
            view = ""
        # The newest id first: the rows read after it include it, so the page's live updates
        # (which wait for an id past this one) miss nothing.
        latest = await self.queries.latest_id()
        rows = await self.queries.conversations(
            before=before, limit=50, number=number, view=view, me=login.user
        )
        older = filter_query(params, before=rows[-1].last_message_id) if len(rows) == 50 else None
        return {
            "rows": rows,
            "number": number,
            "view": view,
            "views": list(VIEWS),
            "older": older,
            "latest": latest,
            "marker": await self.hand_sent.marker(),
            "unread": await self.queries.unread_count(),
            "live": before is None,
        }

    async def changes(self, request: Request, login: Login) -> Response:
        latest = await self.queries.latest_id()
        return JSONResponse(
            {
                "latest": latest,
                "marker": await self.hand_sent.marker(),
                "unread": await self.queries.unread_count(),
            },
            headers={"cache-control": "no-store"},
        )

    async def thread(
        self,
        request: Request,
        login: Login,
        *,
        status: int = 200,
        compose_body: str = "",
        compose_error: str | None = None,
    ) -> Response:
        context = await self._thread_context(request)
        if context is None:
            return self.error_page(login, 404, "No messages from this number.")
        names = [FIRST_ADMIN, *(user.name for user in await self.gate.users.all())]
        return self.page(
            "thread.html",
            status,
            login=login,
            names=names,
            composer=self.composer,
            templates=self.composer.templates() if self.composer else [],
            compose_body=compose_body,
            compose_error=compose_error,
            **context,
        )

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
        marker = await self.hand_sent.marker()
        items = await self.queries.thread(sender, before=before, limit=100)
        older = items[-1][0].id if len(items) == 100 else None
        items.reverse()
        hand = await self.hand_sent.to_number(sender)
        turns = interleave(items, hand, complete_from=older is None, latest=before is None)
        return {
            "conversation": conversation,
            "items": items,
            "turns": turns,
            "older": older,
            "latest": latest,
            "marker": marker,
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
            names=await Contacts(self.queries.engine).names(m.sender for m in rows),
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
            latency_chart=present.horizontal_bars(present.latencies(stats.latency_ms)),
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
        if len(body) > self.max_body_chars:
            error = f"the message is longer than {self.max_body_chars} characters"
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
            Route("/inbox/login", self.gate.login_form, methods=["GET"]),
            Route("/inbox/login", self.gate.login, methods=["POST"]),
            Route("/inbox/logout", g(self.gate.logout, post=True), methods=["POST"]),
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


def _field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""
