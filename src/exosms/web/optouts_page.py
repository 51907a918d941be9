"""The opt-outs page, /inbox/optouts: every opt-out, and a person adding or removing one,
with what each means written beside it. The rules are :mod:`exosms.optout_changes`, the
same as ``exosms optouts``."""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from exosms.optout_changes import (
    EVERYWHERE,
    BadNumber,
    customer_number,
    exotel_number,
    opt_in,
    opt_out,
)
from exosms.store.base import Store
from exosms.web.filters import form_text
from exosms.web.inbox import Inbox
from exosms.web.login import Login

SHOWN = 500  # the newest opt-outs on the page; ?number= finds any other


class OptOutsPage:
    """List, add and remove opt-outs from the inbox."""

    def __init__(self, inbox: Inbox, store: Store) -> None:
        """``store``: where opt-outs live (the hot path reads them for every message)."""
        self.inbox = inbox
        self.store = store

    async def show(
        self,
        request: Request,
        login: Login,
        *,
        status: int = 200,
        said: str | None = None,
        error: str | None = None,
    ) -> Response:
        """GET: the opt-outs, newest first (``?number=`` narrows to one customer)."""
        number = request.query_params.get("number", "").strip()[:32]
        rows = await self.store.list_optouts()
        if number:
            digits = "".join(c for c in number if c.isdigit())
            rows = [r for r in rows if digits and digits in r.sender]
        return self.inbox.page(
            "optouts.html",
            status,
            login=login,
            rows=rows[:SHOWN],
            total=len(rows),
            shown=SHOWN,
            number=number,
            everywhere=EVERYWHERE,
            said=said,
            error=error,
        )

    async def add(self, request: Request, login: Login) -> Response:
        """POST: opt a number out (from one Exotel number, or from every one)."""
        form: FormData = request.state.form
        try:
            who = customer_number(form_text(form, "number"))
            where = exotel_number(form_text(form, "recipient"))
        except BadNumber as error:
            return await self.show(request, login, status=400, error=str(error))
        change = await opt_out(self.store, who, where, "inbox")
        return await self.show(request, login, said=change.said)

    async def remove(self, request: Request, login: Login) -> Response:
        """POST: opt a number back in (every opt-out of theirs, or the one ``recipient``)."""
        form: FormData = request.state.form
        try:
            who = customer_number(form_text(form, "number"))
            raw = form_text(form, "recipient")
            only = None if raw in ("", "all") else exotel_number(raw)
        except BadNumber as error:
            return await self.show(request, login, status=400, error=str(error))
        change = await opt_in(self.store, who, only)
        return await self.show(request, login, said=change.said)

    def routes(self) -> list[BaseRoute]:
        """The page and its two forms, behind the inbox's login (and CSRF for the forms)."""
        g = self.inbox.guarded
        return [  # an admin's pages
            Route("/inbox/optouts", g(self.show, admin=True), methods=["GET"]),
            Route("/inbox/optouts/add", g(self.add, post=True, admin=True), methods=["POST"]),
            Route("/inbox/optouts/remove", g(self.remove, post=True, admin=True), methods=["POST"]),
        ]
