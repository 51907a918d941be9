"""The outbox page, /inbox/outbox: every SMS sent through Exotel's API with its delivery
status and DLT template, filtered by state and number; for an SMS held in doubt, a person
resends it or gives it up (recorded with who and when), as ``exosms outbox`` does."""

from __future__ import annotations

from collections.abc import Callable

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from exosms.numbers import normalise
from exosms.store.outbox import Outbox
from exosms.store.outbox_view import STATES, OutboxView
from exosms.web.filters import MAX_ID, filter_query, parse_int
from exosms.web.inbox import Inbox
from exosms.web.login import Login

PAGE = 50


class OutboxPage:
    """The list, and the two decisions on a held SMS."""

    def __init__(self, inbox: Inbox, outbox: Outbox, wake: Callable[[], None]) -> None:
        """``wake``: tells the outbox worker a resent SMS is waiting."""
        self.inbox = inbox
        self.outbox = outbox
        self.view = OutboxView(outbox.engine)
        self.wake = wake

    async def show(
        self, request: Request, login: Login, *, status: int = 200, said: str | None = None
    ) -> Response:
        """GET: the newest SMS first; ``?state=``, ``?number=``, ``?before=``."""
        params = request.query_params
        state = params.get("state", "")
        if state and state not in STATES:
            choices = ", ".join(STATES)
            return self.inbox.error_page(login, 400, f"state: one of {choices}, not {state!r}")
        raw_number = params.get("number", "").strip()[:32]
        before = parse_int(params, "before", None, 1, MAX_ID)
        rows = await self.view.page(
            state=state or None,
            number=normalise(raw_number) if raw_number else None,
            before=before,
            limit=PAGE,
        )
        older = filter_query(params, before=rows[-1].id) if len(rows) == PAGE else None
        return self.inbox.page(
            "outbox.html",
            status,
            login=login,
            rows=rows,
            states=list(STATES),
            state=state,
            number=raw_number,
            older=older,
            waiting=await self.view.waiting(),
            said=said,
        )

    async def decide(self, request: Request, login: Login) -> Response:
        """POST: resend or give up one held SMS."""
        form: FormData = request.state.form
        row_id = parse_int(form, "id", None, 1, MAX_ID)
        choice = form.get("choice")
        if row_id is None or choice not in ("resend", "give-up"):
            return PlainTextResponse(
                "id: the SMS's number; choice: resend or give-up\n", status_code=400
            )
        row = await self.outbox.decide(row_id, choice == "resend", by=login.user)
        if row is None:
            allowed = "held, in doubt or failed" if choice == "resend" else "held or in doubt"
            said = f"#{row_id} was not {allowed} (already decided, or settled): nothing changed"
            return await self.show(request, login, status=409, said=said)
        if choice == "resend":
            self.wake()
            said = f"#{row_id} queued to send again, by {login.user}"
        else:
            said = f"#{row_id} given up, by {login.user}: it will not be sent again"
        return await self.show(request, login, said=said)

    def routes(self) -> list[BaseRoute]:
        """The page and its decision form, behind the inbox's login (and CSRF)."""
        g = self.inbox.guarded
        return [
            Route("/inbox/outbox", g(self.show), methods=["GET"]),
            Route("/inbox/outbox/decide", g(self.decide, post=True), methods=["POST"]),
        ]
