"""The demo router that ``exosms serve`` uses when no app is given.

It is built with the public API, exactly as a user's router would be.
"""

from __future__ import annotations

from exosms.routing import Router
from exosms.sms import IncomingSms, Match

HELP_TEXT = "exosms demo: send ECHO <text> to get <text> back. Anything else gets no reply."


def build_demo_router() -> Router:
    """HELP gets a help text, ``ECHO <text>`` gets ``<text>`` back, the rest no reply."""
    router = Router()

    @router.keyword("HELP")
    async def help_text(sms: IncomingSms, match: Match) -> str:
        return HELP_TEXT

    @router.keyword("ECHO")
    async def echo(sms: IncomingSms, match: Match) -> str | None:
        return match.rest or None

    return router
