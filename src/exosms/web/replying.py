"""Replying by hand from a conversation: POST /inbox/preview/{sender} (the compose box's live
preview, JSON) and POST /inbox/reply/{sender} (queue the reply, or show why it cannot go).
The checks and the queueing are :mod:`exosms.web.compose`."""

from __future__ import annotations

import logging
from urllib.parse import quote

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from exosms.web.assigning import known, no_such_number
from exosms.web.compose import Composer
from exosms.web.inbox import Inbox
from exosms.web.login import Login

log = logging.getLogger("exosms.inbox")


class Replying:
    """The compose box's endpoints."""

    def __init__(self, inbox: Inbox, composer: Composer) -> None:
        """``inbox``: its login, its queries and its thread page (shown again on a refusal)."""
        self.inbox = inbox
        self.composer = composer

    async def preview_reply(self, request: Request, login: Login) -> Response:
        """POST (from the compose box's script): what sending the text would do, as JSON."""
        if (conversation := await known(self.inbox, request)) is None:
            return no_such_number()
        sender = conversation.sender
        body = _text(request.state.form, "body")
        preview = await self.composer.preview(sender, conversation.recipient, body)
        return JSONResponse(preview.as_dict(), headers={"cache-control": "no-store"})

    async def send_reply(self, request: Request, login: Login) -> Response:
        """POST: queue a hand-written reply (303 to the thread), or show why it cannot go."""
        if (conversation := await known(self.inbox, request)) is None:
            return no_such_number()
        sender = conversation.sender
        body = _text(request.state.form, "body")
        sent = await self.composer.send(sender, conversation.recipient, body, author=login.user)
        if sent.row_id is None:
            return await self.inbox.thread(
                request, login, status=422, compose_body=body, compose_error=sent.preview.held
            )
        log.info("inbox: reply by hand queued as outbox #%d", sent.row_id)
        return RedirectResponse(
            "/inbox/c/" + quote(sender, safe="") + "#out" + str(sent.row_id), status_code=303
        )

    def routes(self) -> list[BaseRoute]:
        """The two POST routes, behind the inbox's login and CSRF check."""
        g = self.inbox.guarded
        return [
            Route(
                "/inbox/preview/{sender:path}", g(self.preview_reply, post=True), methods=["POST"]
            ),
            Route("/inbox/reply/{sender:path}", g(self.send_reply, post=True), methods=["POST"]),
        ]


def _text(form: FormData, name: str) -> str:
    """A text field as written (a browser's CRLF line ends made LF), not stripped: a DLT
    template is matched to the character."""
    value = form.get(name)
    return value.replace("\r\n", "\n") if isinstance(value, str) else ""
