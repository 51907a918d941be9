"""What a person does to a conversation (agents and admins alike): give it to someone
(POST /inbox/assign/{sender}), close it or open it again (POST /inbox/state/{sender}), name
the customer (POST /inbox/contact/{sender}). The conversations page lists them by view
(mine, unassigned, open, closed) and shows the names."""

from __future__ import annotations

import logging
from urllib.parse import quote

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from exosms.store.contacts import ContactError, Contacts
from exosms.store.inbox import Conversation
from exosms.store.users import FIRST_ADMIN, Users
from exosms.web.inbox import Inbox
from exosms.web.login import Login

log = logging.getLogger("exosms.inbox")


class Assigning:
    """Assign, close and reopen conversations."""

    def __init__(self, inbox: Inbox, users: Users) -> None:
        """``users``: whom a conversation may be given to (and the first admin)."""
        self.inbox = inbox
        self.users = users
        self.contacts = Contacts(inbox.queries.engine)

    async def names(self) -> list[str]:
        """Everyone a conversation may be assigned to."""
        return [FIRST_ADMIN, *(user.name for user in await self.users.all())]

    async def assign(self, request: Request, login: Login) -> Response:
        """POST ``user`` (empty: nobody)."""
        if (conversation := await known(self.inbox, request)) is None:
            return no_such_number()
        sender = conversation.sender
        form: FormData = request.state.form
        raw = form.get("user")
        user = raw.strip().lower() if isinstance(raw, str) and raw.strip() else None
        if user is not None and user not in await self.names():
            return PlainTextResponse(f"user: no user {user!r}\n", status_code=400)
        await self.inbox.queries.assign(sender, user)
        log.info("inbox: %s assigned a conversation to %s", login.user, user or "nobody")
        return _back(sender)

    async def state(self, request: Request, login: Login) -> Response:
        """POST ``action`` close or reopen."""
        if (conversation := await known(self.inbox, request)) is None:
            return no_such_number()
        sender = conversation.sender
        form: FormData = request.state.form
        action = form.get("action")
        if action not in ("close", "reopen"):
            return PlainTextResponse("action: close or reopen\n", status_code=400)
        await self.inbox.queries.close(sender, action == "close")
        log.info("inbox: %s %s a conversation", login.user, f"{action}d".replace("ee", "e"))
        return _back(sender)

    async def contact(self, request: Request, login: Login) -> Response:
        """POST ``name`` (empty: forget it)."""
        if (conversation := await known(self.inbox, request)) is None:
            return no_such_number()
        sender = conversation.sender
        form: FormData = request.state.form
        raw = form.get("name")
        try:
            await self.contacts.set(sender, raw if isinstance(raw, str) else "", login.user)
        except ContactError as error:
            return PlainTextResponse(f"name: {error}\n", status_code=400)
        return _back(sender)

    def routes(self) -> list[BaseRoute]:
        """The two POST routes, behind the inbox's login and CSRF check."""
        g = self.inbox.guarded
        return [
            Route("/inbox/assign/{sender:path}", g(self.assign, post=True), methods=["POST"]),
            Route("/inbox/state/{sender:path}", g(self.state, post=True), methods=["POST"]),
            Route("/inbox/contact/{sender:path}", g(self.contact, post=True), methods=["POST"]),
        ]


async def known(inbox: Inbox, request: Request) -> Conversation | None:
    """The conversation of the number in the path, if it has messages."""
    found: Conversation | None = await inbox.queries.conversation(request.path_params["sender"])
    return found


def no_such_number() -> Response:
    """The answer to a number with no messages."""
    return PlainTextResponse("no messages from this number\n", status_code=404)


def _back(sender: str) -> Response:
    return RedirectResponse("/inbox/c/" + quote(sender, safe=""), status_code=303)
