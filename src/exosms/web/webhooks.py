"""Exotel's newer inbound webhooks and its delivery status callbacks.

``POST /exotel/webhook`` takes an incoming SMS as JSON (two-way messaging: ``SmsSid,
Direction, Sender, ReceivedOn, MessageBody, ReceivedTime``) or as a form (``SmsSid, From, To,
Body, DateCreated, AccountSid``). It runs the same engine as the applet (exactly once per
SmsSid, the same rules and guards), answers 200 once the message is stored, and queues the
reply in the outbox: the HTTP answer is not a reply here.

``POST /exotel/status`` records Exotel's status callbacks on the outgoing SMS.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from starlette.types import Receive, Scope, Send

from exosms.engine import ReplyEngine
from exosms.exotel import forms
from exosms.exotel.applet import AppletRequest, BadRequest, checked
from exosms.exotel.callbacks import PREFIX, verify
from exosms.metrics import Metrics
from exosms.outcomes import Outcome
from exosms.store.base import StoreUnavailable
from exosms.store.outbox import Outbox
from exosms.web.applet import send_text
from exosms.web.auth import Gatekeeper

log = logging.getLogger("exosms.webhook")

MAX_POST_BYTES = 64 * 1024
# Raw ASGI, as the applet: Starlette's Request and Response cost a tenth of a status
# callback's own work, and every byte of these answers is ours to choose anyway.
Endpoint = Callable[[Scope, Receive, Send], Awaitable[None]]


class _Gone(Exception):
    """The client went away before its body was read: there is nobody to answer."""


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return ""


def _token(scope: Scope) -> str | None:
    token: str | None = scope.get("path_params", {}).get("token")
    return token


MAX_JSON_DEPTH = 8  # Exotel's webhooks are flat objects; deeper is not Exotel


async def _body(scope: Scope, receive: Receive) -> bytes:
    """The body, read as a stream and refused (413) once past the limit, before the rest."""
    declared = _header(scope, b"content-length")
    if declared.isascii() and declared.isdigit() and int(declared) > MAX_POST_BYTES:
        raise BadRequest(f"body longer than {MAX_POST_BYTES} bytes", status=413)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Gone
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > MAX_POST_BYTES:
            raise BadRequest(f"body longer than {MAX_POST_BYTES} bytes", status=413)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _depth(value: object, limit: int) -> bool:
    """Whether ``value`` nests at most ``limit`` deep (checked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return False
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return True


def _field_text(value: str, name: str) -> str:
    """A field's text as it may be stored and sent: valid Unicode, no NUL."""
    if "\x00" in value:
        raise BadRequest(f"{name[:40]!r} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(f"{name[:40]!r} is not valid Unicode") from None
    return value


async def _fields(scope: Scope, receive: Receive) -> dict[str, str]:
    kind = _header(scope, b"content-type").split(";")[0].strip().lower()
    if kind not in ("application/json", "application/x-www-form-urlencoded", ""):
        raise BadRequest(f"unsupported content type {kind!r}: send JSON or a form", status=415)
    raw = await _body(scope, receive)
    if kind == "application/json":
        try:
            data = json.loads(raw)
        except RecursionError:  # the C parser's own recursion limit: far past ours
            raise BadRequest(f"JSON nested deeper than {MAX_JSON_DEPTH}") from None
        except ValueError:
            raise BadRequest("not valid JSON") from None
        if not isinstance(data, dict):
            raise BadRequest("expected a JSON object")
        if not _depth(data, MAX_JSON_DEPTH):
            raise BadRequest(f"JSON nested deeper than {MAX_JSON_DEPTH}")
        return {
            _field_text(str(k), "a field name"): _field_text("" if v is None else str(v), str(k))
            for k, v in data.items()
        }
    # As on the applet path: invalid UTF-8 is kept as replacement characters, not refused
    # (so every field is valid Unicode: only a NUL is left to refuse).
    return _without_nul(forms.decode(raw))


def _without_nul(fields: dict[str, str]) -> dict[str, str]:
    for name, value in fields.items():
        if "\x00" in name or "\x00" in value:
            named = "a field name" if "\x00" in name else name[:40]
            raise BadRequest(f"{named!r} contains a NUL character")
    return fields


def _as_applet(fields: dict[str, str], max_body_chars: int) -> AppletRequest | None:
    """Either webhook shape, in the applet's terms (and through the applet's checks)."""
    if "MessageBody" in fields or "Sender" in fields:  # two-way messaging JSON
        mapped = {
            "SmsSid": fields.get("SmsSid", ""),
            "From": fields.get("Sender", ""),
            "To": fields.get("ReceivedOn", ""),
            "Date": fields.get("ReceivedTime", ""),
            "Body": fields.get("MessageBody", ""),
        }
    else:
        mapped = {
            "SmsSid": fields.get("SmsSid", ""),
            "From": fields.get("From", ""),
            "To": fields.get("To", ""),
            "Date": fields.get("DateCreated", fields.get("Date", "")),
            "Body": fields.get("Body", ""),
        }
    return checked(mapped, forms.encode(mapped), max_body_chars=max_body_chars)


def webhook_endpoint(
    engine: ReplyEngine,
    gatekeeper: Gatekeeper,
    max_body_chars: int,
    sent: Callable[[], None],
    metrics: Metrics | None = None,
) -> Endpoint:
    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        refusal = gatekeeper.check(scope, _token(scope))
        if refusal is not None:
            await send_text(send, refusal.status, refusal.reason + "\n", list(refusal.headers))
            return
        try:
            incoming = _as_applet(await _fields(scope, receive), max_body_chars)
        except BadRequest as error:
            await send_text(send, error.status, error.reason + "\n")
            return
        except _Gone:
            return
        if incoming is None:
            await send_text(send, 400, "missing SmsSid\n")
            return
        try:
            # The reply is queued in the answer's own transaction: a retry after any failure
            # finds it queued (or queues it), never twice.
            answer = await engine.receive(incoming, "POST", queue_reply=True)
            if answer.reply and answer.outcome != Outcome.REPLAYED:
                sent()
        except StoreUnavailable as error:
            log.error("sid=%s webhook: database unavailable: %s", incoming.sms_sid, error)
            if metrics is not None:
                metrics.database_error("webhook")
            await send_text(send, 503, "database unavailable, try again\n")
            return
        log.info("sid=%s POST webhook %s", incoming.sms_sid, answer.outcome)
        await send_text(send, 200, "ok\n")

    return endpoint


def status_endpoint(
    outbox: Outbox, gatekeeper: Gatekeeper, signing_key: bytes, metrics: Metrics | None = None
) -> Endpoint:
    """Exotel's status callbacks, by POST (form or JSON) or GET (newer docs make the method
    selectable). They carry no credentials: the URL's token and our signed ``CustomField``
    are what is checked, never Basic auth."""

    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        refusal = gatekeeper.check(scope, _token(scope), basic=False)
        if refusal is not None:
            await send_text(send, refusal.status, refusal.reason + "\n")
            return
        try:
            if scope["method"] == "GET":
                fields = _without_nul(forms.decode(scope["query_string"]))
            else:
                fields = await _fields(scope, receive)
        except BadRequest as error:
            await send_text(send, error.status, error.reason + "\n")
            return
        except _Gone:
            return
        if not fields.get("SmsSid"):
            await send_text(send, 400, "missing SmsSid\n")
            return
        custom = fields.get("CustomField", "")
        row_id = verify(custom, signing_key)
        if custom.startswith(PREFIX) and row_id is None:
            log.warning("status callback refused: CustomField not signed by this server")
            await send_text(send, 403, "CustomField is not signed by this server\n")
            return
        try:
            row = await outbox.record_status(fields, row_id)
        except StoreUnavailable:
            if metrics is not None:
                metrics.database_error("status")
            await send_text(send, 503, "database unavailable, try again\n")
            return
        if metrics is not None:
            metrics.callback(fields.get("Status", ""))
        if row is None:
            log.warning("status callback for an SMS not in the outbox kept for inspection")
        await send_text(send, 200, "ok\n")

    return endpoint
