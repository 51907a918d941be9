"""The servers the benchmark compares. Each is started as its own uvicorn process."""

from __future__ import annotations

from urllib.parse import parse_qsl

from exosms import IncomingSms, Match, Router

# exosms's keyword router for the benchmark.
router = Router()


@router.keyword("ECHO")
async def echo(sms: IncomingSms, match: Match) -> str | None:
    return match.rest or None


@router.keyword("HELP")
async def help_text(sms: IncomingSms, match: Match) -> str:
    return "Send ORDER <number> for your order status. - Acme"


@router.keyword("ORDER", "ORD")
async def order(sms: IncomingSms, match: Match) -> str:
    return f"Order {match.rest} is out for delivery. - Acme"


# The ceiling: the fastest plain ASGI app that answers the same contract from memory
# (no storage, no durability): the same replies, exact headers, replay by SmsSid.
_answers: dict[str, bytes] = {}


def _reply(body: str) -> bytes:
    word, _, rest = body.strip().partition(" ")
    word = word.upper()
    if word == "ECHO":
        return rest.encode()
    if word == "HELP":
        return b"Send ORDER <number> for your order status. - Acme"
    if word in ("ORDER", "ORD"):
        return f"Order {rest} is out for delivery. - Acme".encode()
    return b""


async def bare(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] != "http":
        return
    params = dict(parse_qsl(scope["query_string"].decode("latin-1"), encoding="utf-8"))
    sid = params.get("SmsSid", "")
    body = _answers.get(sid)
    if body is None:
        body = _reply(params.get("Body", ""))
        if sid:
            _answers[sid] = body
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})


def fastapi_app():  # type: ignore[no-untyped-def]
    """What many users pick: an empty FastAPI endpoint, no storage (and HEAD gives 405)."""
    from fastapi import FastAPI
    from fastapi.responses import PlainTextResponse

    app = FastAPI()

    @app.get("/exotel/sms", response_class=PlainTextResponse)
    def sms() -> str:
        return ""

    return app
