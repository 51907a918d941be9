"""``/`` (where to point Exotel, the token's place named, never the token) and ``/healthz``
(``ok`` when the database answers; the refused-request count in a header)."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response

from exosms.config import Settings
from exosms.metrics import Metrics
from exosms.store import Store, StoreUnavailable
from exosms.web.auth import Gatekeeper

log = logging.getLogger("exosms")


def text_response(status: int, text: str) -> Response:
    """A ``text/plain`` answer, with nothing added to the type."""
    return Response(text, status_code=status, headers={"content-type": "text/plain"})


class Pages:
    """``/`` (where to point Exotel) and ``/healthz``."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        gatekeeper: Gatekeeper,
        metrics: Metrics | None = None,
    ) -> None:
        self.metrics = metrics
        self.applet_path = settings.applet_path
        self.inbox_enabled = settings.inbox.enabled
        self.needs_token = settings.auth.token is not None
        self.store = store
        self.gatekeeper = gatekeeper

    async def healthz(self, request: Request) -> Response:
        try:
            await self.store.ping()
        except StoreUnavailable as error:
            log.error("health check: database unavailable: %s", error)
            if self.metrics is not None:
                self.metrics.database_error("healthz")
            return text_response(503, "database unavailable\n")
        # "ok" and nothing more, for monitors that match the body; the count of refused
        # requests rides in a header.
        response = text_response(200, "ok\n")
        response.headers["x-exosms-refused-requests"] = str(self.gatekeeper.refused)
        return response

    async def index(self, request: Request) -> Response:
        base = str(request.base_url)
        if base.startswith("http://") and self.gatekeeper.is_https(request.scope):
            base = "https://" + base.removeprefix("http://")  # behind a TLS proxy we trust
        # With a token, only /exotel/sms/<token> answers: name the shape, never the token.
        token = "/<your [auth] token>" if self.needs_token else ""
        applet_url = f"{base}{self.applet_path.lstrip('/')}{token}"
        inbox_line = (
            f"The inbox: {base}inbox\n"
            if self.inbox_enabled
            else "The inbox is off: set an admin password with `exosms password`.\n"
        )
        return text_response(
            200,
            f"exosms is running.\nPoint Exotel's Send a Reply applet at {applet_url}\n"
            f"or its SMS webhook at {base}exotel/webhook{token}\n" + inbox_line,
        )
