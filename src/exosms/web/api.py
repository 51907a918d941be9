"""The JSON API under /api: the inbox's data for scripts and dashboards.

Read with ``Authorization: Bearer <inbox.api_token>``, or from a browser logged in to the
inbox (GET only). Off (404) while the inbox is off. The OpenAPI description is served at
/api/openapi.json and checked against the running API by the tests (schemathesis).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from exosms.store.base import StoreUnavailable
from exosms.store.inbox import Conversation
from exosms.web import api_models, openapi, present
from exosms.web.export import export_response
from exosms.web.filters import MAX_ID, BadFilter, check_text, filter_query, parse_filters, parse_int
from exosms.web.inbox import Inbox, try_message

API_HEADERS = {"cache-control": "no-store", "x-content-type-options": "nosniff"}


def json_error(status: int, message: str, **headers: str) -> JSONResponse:
    """An API refusal: ``{"error": message}`` with ``status``."""
    return JSONResponse({"error": message}, status_code=status, headers={**API_HEADERS, **headers})


def json_ok(data: Any) -> JSONResponse:
    """An API answer: ``data`` as JSON."""
    return JSONResponse(data, headers=API_HEADERS)


def _conversation(c: Conversation, clock: present.Clock) -> dict[str, Any]:
    return api_models.Conversation(
        sender=c.sender,
        recipient=c.recipient,
        last_message_id=c.last_message_id,
        last_at=c.last_at,
        last_at_iso=clock.iso(c.last_at),
        message_count=c.message_count,
        unread=c.unread,
        last_body=c.body,
        last_reply=c.reply,
        last_outcome=c.outcome or "pending",
    ).model_dump()


class Api:
    def __init__(self, inbox: Inbox, destinations: tuple[str, ...] = ()) -> None:
        """``destinations``: the forwarding destinations' names (for the OpenAPI document)."""
        self.inbox = inbox
        self.destinations = destinations
        token = inbox.config.api_token
        self.token = token.get_secret_value().encode() if token is not None else None

    async def _allowed(self, request: Request) -> JSONResponse | None:
        header = request.headers.get("authorization", "")
        if header:
            scheme, _, given = header.partition(" ")
            if (
                scheme.lower() == "bearer"
                and self.token is not None
                and hmac.compare_digest(given.strip().encode(), self.token)
            ):
                return None
            return json_error(401, "wrong bearer token", **{"www-authenticate": "Bearer"})
        if request.method == "GET" and await self.inbox.login_of(request) is not None:
            return None
        return json_error(
            401,
            "send Authorization: Bearer <inbox.api_token>, or log in to the inbox",
            **{"www-authenticate": "Bearer"},
        )

    def guarded(
        self, handler: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            if self.inbox.signer is None:
                return json_error(
                    404, "the API is off: set an admin password with `exosms password`"
                )
            try:
                check_text(request)
                refused = await self._allowed(request)
                if refused is not None:
                    return refused
                return await handler(request)
            except BadFilter as error:
                return json_error(400, str(error))
            except StoreUnavailable:
                return json_error(503, "database unavailable, try again")

        return endpoint

    async def messages(self, request: Request) -> Response:
        params = request.query_params
        filters = parse_filters(params, self.inbox.zone)
        before = parse_int(params, "before", None, 1, MAX_ID)
        limit = parse_int(params, "limit", 50, 1, 500) or 50
        rows = await self.inbox.queries.search(filters, before=before, limit=limit)
        next_page = None
        if len(rows) == limit:
            next_page = "/api/messages?" + filter_query(params, before=rows[-1].id)
        page = api_models.MessagePage(
            messages=[present.message_json(m, zone=self.inbox.zone) for m in rows], next=next_page
        )
        return json_ok(page.model_dump())

    async def message(self, request: Request) -> Response:
        raw = request.path_params["id"]
        message_id = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 19 else 0
        found = await self.inbox.queries.message(message_id) if 0 < message_id <= MAX_ID else None
        if found is None:
            return json_error(404, "no such message")
        return json_ok(present.message_json(found[0], found[1], zone=self.inbox.zone))

    async def export(self, request: Request) -> Response:
        filters = parse_filters(request.query_params, self.inbox.zone)
        kind = request.query_params.get("format", "jsonl")
        return export_response(self.inbox.queries, filters, kind, self.inbox.zone)

    async def conversations(self, request: Request) -> Response:
        params = request.query_params
        before = parse_int(params, "before", None, 1, MAX_ID)
        limit = parse_int(params, "limit", 50, 1, 500) or 50
        number = params.get("number", "").strip()
        if len(number) > 32:
            raise BadFilter("number: at most 32 characters")
        rows = await self.inbox.queries.conversations(before=before, limit=limit, number=number)
        next_page = None
        if len(rows) == limit:
            next_page = "/api/conversations?" + filter_query(
                params, before=rows[-1].last_message_id
            )
        clock = self.inbox.clock
        return json_ok(
            {"conversations": [_conversation(c, clock) for c in rows], "next": next_page}
        )

    async def conversation(self, request: Request) -> Response:
        sender = request.path_params["sender"]
        found = await self.inbox.queries.conversation(sender) if len(sender) <= 256 else None
        if found is None:
            return json_error(404, "no messages from this number")
        before = parse_int(request.query_params, "before", None, 1, MAX_ID)
        limit = parse_int(request.query_params, "limit", 100, 1, 500) or 100
        items = await self.inbox.queries.thread(sender, before=before, limit=limit)
        return json_ok(
            {
                "conversation": _conversation(found, self.inbox.clock),
                "messages": [present.message_json(m, d, zone=self.inbox.zone) for m, d in items],
            }
        )

    async def conversation_or_mark_read(self, request: Request) -> Response:
        # One route for both methods, so that a 405 lists both in `Allow`.
        if request.method == "POST":
            return await self.mark_read(request)
        return await self.conversation(request)

    async def mark_read(self, request: Request) -> Response:
        """POST: the conversation read up to ``upto`` (default: its newest message)."""
        sender = request.path_params["sender"]
        found = await self.inbox.queries.conversation(sender) if len(sender) <= 256 else None
        if found is None:
            return json_error(404, "no messages from this number")
        upto = found.last_message_id
        raw = await request.body()
        if raw.strip():
            if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
                return json_error(415, "send a JSON object (content-type: application/json)")
            try:
                data = json.loads(raw)
            except (ValueError, UnicodeDecodeError, RecursionError):
                return json_error(400, "the body is not valid JSON")
            given = data.get("upto") if isinstance(data, dict) else None
            if isinstance(given, float) and given.is_integer():
                given = int(given)  # JSON has one number type: 12.0 is the integer 12
            if not isinstance(data, dict) or (
                "upto" in data and (type(given) is not int or not 1 <= given <= MAX_ID)
            ):
                return json_error(400, f'send {{"upto": <a message id from 1 to {MAX_ID}>}}')
            if isinstance(given, int):
                upto = given
        await self.inbox.queries.mark_read(sender, upto)
        return json_ok(api_models.ReadMark(sender=sender, read_upto=upto).model_dump())

    async def stats(self, request: Request) -> Response:
        stats = await self.inbox.queries.stats(utc_offset=self.inbox.clock.utc_offset())
        answer = api_models.Stats(
            since=stats.since,
            total=stats.total,
            hours=stats.hours,
            per_hour=stats.per_hour,
            outcomes=stats.outcomes,
            latency_ms=stats.latency_ms,
            handler_ms=stats.handler_ms,
            top_keywords=[api_models.WordCount(word=w, count=n) for w, n in stats.top_keywords],
            top_rules=[api_models.RuleCount(rule=r, count=n) for r, n in stats.top_rules],
        )
        return json_ok(answer.model_dump())

    async def try_it(self, request: Request) -> Response:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return json_error(415, "send a JSON object (content-type: application/json)")
        try:
            data = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            return json_error(400, "the body is not valid JSON")
        if not isinstance(data, dict) or not isinstance(data.get("body"), str):
            return json_error(400, 'send {"body": "...", "from": "...", "to": "..."}')
        sender, recipient = data.get("from", "9052161119"), data.get("to", "56070")
        if not isinstance(sender, str) or not isinstance(recipient, str):
            return json_error(400, "from and to must be strings")
        if not sender.strip() or not recipient.strip() or len(sender) > 64 or len(recipient) > 64:
            return json_error(400, "from and to must be 1 to 64 characters")
        if len(data["body"]) > self.inbox.max_body_chars:
            return json_error(400, f"body: at most {self.inbox.max_body_chars} characters")
        trial = await try_message(
            self.inbox.engine, self.inbox.queries, sender, recipient, data["body"]
        )
        return json_ok(trial.as_dict())

    async def openapi(self, request: Request) -> Response:
        if self.inbox.signer is None:
            return json_error(404, "the API is off: set an admin password with `exosms password`")
        return json_ok(openapi.openapi_document(self.inbox.max_body_chars, self.destinations))

    def routes(self) -> list[BaseRoute]:
        g = self.guarded
        return [
            Route("/api/openapi.json", self.openapi, methods=["GET"]),
            Route("/api/messages", g(self.messages), methods=["GET"]),
            Route("/api/messages/{id}", g(self.message), methods=["GET"]),
            Route("/api/export", g(self.export), methods=["GET"]),
            Route("/api/conversations", g(self.conversations), methods=["GET"]),
            # `path`: a sender may hold any character, `/` included (encoded or not).
            Route(
                "/api/conversations/{sender:path}",
                g(self.conversation_or_mark_read),
                methods=["GET", "POST"],
            ),
            Route("/api/stats", g(self.stats), methods=["GET"]),
            Route("/api/try", g(self.try_it), methods=["POST"]),
        ]
