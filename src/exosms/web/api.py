"""The JSON API under /api: the inbox's data for scripts and dashboards.

Read with ``Authorization: Bearer <inbox.api_token>``, or from a browser logged in to the
inbox (GET only). Off (404) while the inbox is off. The OpenAPI description is served at
/api/openapi.json and checked against the running API by the tests (schemathesis).
"""

from __future__ import annotations

import functools
import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import TypeAdapter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from exosms.store.base import StoredMessage, StoreUnavailable
from exosms.store.inbox import DLT_VERDICTS, OUTCOMES, Conversation, Delivery
from exosms.web import present
from exosms.web.export import export_response
from exosms.web.filters import MAX_ID, BadFilter, check_text, filter_query, parse_filters, parse_int
from exosms.web.inbox import Inbox, try_message

API_HEADERS = {"cache-control": "no-store", "x-content-type-options": "nosniff"}


def _error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers={**API_HEADERS, **headers})


def _ok(data: Any) -> JSONResponse:
    return JSONResponse(data, headers=API_HEADERS)


def _conversation(c: Conversation, clock: present.Clock) -> dict[str, Any]:
    return {
        "sender": c.sender,
        "recipient": c.recipient,
        "last_message_id": c.last_message_id,
        "last_at": c.last_at,
        "last_at_iso": clock.iso(c.last_at),
        "message_count": c.message_count,
        "unread": c.unread,
        "last_body": c.body,
        "last_reply": c.reply,
        "last_outcome": c.outcome or "pending",
    }


class Api:
    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox
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
            return _error(401, "wrong bearer token", **{"www-authenticate": "Bearer"})
        if request.method == "GET" and await self.inbox.login_of(request) is not None:
            return None
        return _error(
            401,
            "send Authorization: Bearer <inbox.api_token>, or log in to the inbox",
            **{"www-authenticate": "Bearer"},
        )

    def guarded(
        self, handler: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            if self.inbox.signer is None:
                return _error(404, "the API is off: set an admin password with `exosms password`")
            try:
                check_text(request)
                refused = await self._allowed(request)
                if refused is not None:
                    return refused
                return await handler(request)
            except BadFilter as error:
                return _error(400, str(error))
            except StoreUnavailable:
                return _error(503, "database unavailable, try again")

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
        return _ok(
            {
                "messages": [present.message_json(m, zone=self.inbox.zone) for m in rows],
                "next": next_page,
            }
        )

    async def message(self, request: Request) -> Response:
        raw = request.path_params["id"]
        message_id = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 19 else 0
        found = await self.inbox.queries.message(message_id) if 0 < message_id <= MAX_ID else None
        if found is None:
            return _error(404, "no such message")
        return _ok(present.message_json(found[0], found[1], zone=self.inbox.zone))

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
        return _ok({"conversations": [_conversation(c, clock) for c in rows], "next": next_page})

    async def conversation(self, request: Request) -> Response:
        sender = request.path_params["sender"]
        found = await self.inbox.queries.conversation(sender) if len(sender) <= 256 else None
        if found is None:
            return _error(404, "no messages from this number")
        before = parse_int(request.query_params, "before", None, 1, MAX_ID)
        limit = parse_int(request.query_params, "limit", 100, 1, 500) or 100
        items = await self.inbox.queries.thread(sender, before=before, limit=limit)
        return _ok(
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
            return _error(404, "no messages from this number")
        upto = found.last_message_id
        raw = await request.body()
        if raw.strip():
            if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
                return _error(415, "send a JSON object (content-type: application/json)")
            try:
                data = json.loads(raw)
            except (ValueError, UnicodeDecodeError, RecursionError):
                return _error(400, "the body is not valid JSON")
            given = data.get("upto") if isinstance(data, dict) else None
            if isinstance(given, float) and given.is_integer():
                given = int(given)  # JSON has one number type: 12.0 is the integer 12
            if not isinstance(data, dict) or (
                "upto" in data and (type(given) is not int or not 1 <= given <= MAX_ID)
            ):
                return _error(400, f'send {{"upto": <a message id from 1 to {MAX_ID}>}}')
            if isinstance(given, int):
                upto = given
        await self.inbox.queries.mark_read(sender, upto)
        return _ok({"sender": sender, "read_upto": upto})

    async def stats(self, request: Request) -> Response:
        stats = await self.inbox.queries.stats(utc_offset=self.inbox.clock.utc_offset())
        return _ok(
            {
                "since": stats.since,
                "total": stats.total,
                "hours": stats.hours,
                "per_hour": stats.per_hour,
                "outcomes": stats.outcomes,
                "latency_ms": stats.latency_ms,
                "handler_ms": stats.handler_ms,
                "top_keywords": [{"word": w, "count": n} for w, n in stats.top_keywords],
                "top_rules": [{"rule": r, "count": n} for r, n in stats.top_rules],
            }
        )

    async def try_it(self, request: Request) -> Response:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return _error(415, "send a JSON object (content-type: application/json)")
        try:
            data = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            return _error(400, "the body is not valid JSON")
        if not isinstance(data, dict) or not isinstance(data.get("body"), str):
            return _error(400, 'send {"body": "...", "from": "...", "to": "..."}')
        sender, recipient = data.get("from", "9052161119"), data.get("to", "56070")
        if not isinstance(sender, str) or not isinstance(recipient, str):
            return _error(400, "from and to must be strings")
        if not sender.strip() or not recipient.strip() or len(sender) > 64 or len(recipient) > 64:
            return _error(400, "from and to must be 1 to 64 characters")
        if len(data["body"]) > self.inbox.settings.max_body_chars:
            return _error(400, f"body: at most {self.inbox.settings.max_body_chars} characters")
        trial = await try_message(
            self.inbox.engine, self.inbox.queries, sender, recipient, data["body"]
        )
        return _ok(trial.as_dict())

    async def openapi(self, request: Request) -> Response:
        if self.inbox.signer is None:
            return _error(404, "the API is off: set an admin password with `exosms password`")
        return _ok(openapi_document(self.inbox.settings.max_body_chars))

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


# -- the OpenAPI description ------------------------------------------------------------

_NULLABLE_STRING = {"type": ["string", "null"]}
NO_NUL = "^[^\\x00]*$"
_NULLABLE_NUMBER = {"type": ["number", "null"]}
_NULLABLE_INT = {"type": ["integer", "null"]}


def dataclass_properties(cls: type, **changes: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema properties of a dataclass, as pydantic derives them from its fields'
    types (``X | None`` as ``["x", "null"]``), with ``changes`` merged into some."""
    schema = TypeAdapter(cls).json_schema()
    properties: dict[str, Any] = {}
    for name, found in schema["properties"].items():
        prop = {k: v for k, v in found.items() if k not in ("title", "default")}
        options = prop.pop("anyOf", None)
        if options is not None:
            prop["type"] = [option["type"] for option in options]
        properties[name] = {**prop, **changes.get(name, {})}
    return properties


@functools.cache  # built once per process: pydantic derives part of it
def openapi_document(max_body_chars: int = 1600) -> dict[str, Any]:
    def query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
        if schema.get("type") == "string" and "enum" not in schema:
            schema = {**schema, "pattern": NO_NUL}  # a NUL is refused with 400
        return {
            "name": name,
            "in": "query",
            "required": False,
            "description": description,
            "schema": schema,
        }

    # Empty values do not filter (HTML forms send every field).
    day = {"type": "string", "anyOf": [{"format": "date"}, {"maxLength": 0}]}
    filters = [
        query(
            "q",
            "Words in the message or its reply (prefix match).",
            {"type": "string", "maxLength": 200},
        ),
        query(
            "number",
            "The sender: a full number, or some of its digits.",
            {"type": "string", "maxLength": 32},
        ),
        query(
            "from",
            "First day (YYYY-MM-DD, display time zone).",
            day,
        ),
        query("to", "Last day, included (YYYY-MM-DD).", day),
        query(
            "outcome", "How the message was answered.", {"type": "string", "enum": ["", *OUTCOMES]}
        ),
        query("rule", "The rule that answered.", {"type": "string", "maxLength": 200}),
        query(
            "dlt", "The DLT verdict of the reply.", {"type": "string", "enum": ["", *DLT_VERDICTS]}
        ),
    ]
    page = [
        query(
            "before",
            "Messages older than this id (the `next` link sets it).",
            {"type": "integer", "minimum": 1, "maximum": MAX_ID},
        ),
        query(
            "limit", "Page size.", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}
        ),
    ]
    error = {
        "description": "The reason, in one line.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    errors = {"400": error, "401": error, "503": error}
    too_large = {
        "description": "The body is longer than the server's `max_request_bytes` (64 KiB by "
        "default); answered before the body is read, in text/plain.",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    }

    def ok(schema: str, description: str) -> dict[str, Any]:
        return {
            "description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
        }

    # The message as the API gives it: every stored field (StoredMessage, the one
    # declaration of the row), with what the API adds and says about some.
    message_props: dict[str, Any] = {
        **dataclass_properties(
            StoredMessage,
            query={"description": "The raw query string Exotel sent (secrets redacted)."},
            received_at={"description": "Epoch seconds."},
            state={"enum": ["pending", "done"]},
            outcome={"type": "string", "enum": list(OUTCOMES)},
        ),
        "received_at_iso": {"type": "string"},
        "why": _NULLABLE_STRING,
        "dlt_verdict": {"type": "string", "enum": list(DLT_VERDICTS)},
        "delivery": {"$ref": "#/components/schemas/Delivery"},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "exosms API",
            "version": "1",
            "description": "Messages, conversations and statistics of an exosms server. "
            "Authenticate with `Authorization: Bearer <inbox.api_token>`.",
        },
        "security": [{"bearer": []}],
        "paths": {
            "/api/messages": {
                "get": {
                    "summary": "Search messages, newest first",
                    "parameters": filters + page,
                    "responses": {"200": ok("MessagePage", "A page of messages."), **errors},
                }
            },
            "/api/messages/{id}": {
                "get": {
                    "summary": "One message, every stored field",
                    "parameters": [
                        {
                            "name": "id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "integer"},
                        }
                    ],
                    "responses": {"200": ok("Message", "The message."), "404": error, **errors},
                }
            },
            "/api/export": {
                "get": {
                    "summary": "Every message the filters select, streamed as JSONL or CSV",
                    "parameters": [
                        *filters,
                        query(
                            "format",
                            "jsonl (default) or csv.",
                            {"type": "string", "enum": ["jsonl", "csv"]},
                        ),
                    ],
                    "responses": {
                        "200": {
                            "description": "One JSON object per line, or CSV.",
                            "content": {
                                "application/x-ndjson": {"schema": {"type": "string"}},
                                "text/csv": {"schema": {"type": "string"}},
                            },
                        },
                        **errors,
                    },
                }
            },
            "/api/conversations": {
                "get": {
                    "summary": "One row per customer number, newest first",
                    "parameters": [
                        query(
                            "number",
                            "Some digits of the number.",
                            {"type": "string", "maxLength": 32},
                        ),
                        *page,
                    ],
                    "responses": {
                        "200": ok("ConversationPage", "A page of conversations."),
                        **errors,
                    },
                }
            },
            "/api/conversations/{sender}": {
                "get": {
                    "summary": "A conversation and its messages, newest first",
                    "parameters": [
                        {
                            "name": "sender",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "pattern": NO_NUL},
                        },
                        *page,
                    ],
                    "responses": {"200": ok("Thread", "The conversation."), "404": error, **errors},
                },
                "post": {
                    "summary": "Mark the conversation read (opening it with GET changes nothing)",
                    "parameters": [
                        {
                            "name": "sender",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "pattern": NO_NUL},
                        }
                    ],
                    "requestBody": {
                        "required": False,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "upto": {
                                            "type": "integer",
                                            "minimum": 1,
                                            "maximum": MAX_ID,
                                            "description": "Read up to this message id "
                                            "(default: the newest).",
                                        }
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": ok("ReadMark", "Read up to this id."),
                        "404": error,
                        "413": too_large,
                        "415": error,
                        **errors,
                    },
                },
            },
            "/api/stats": {
                "get": {
                    "summary": "The last 7 days: per hour, by outcome, latency, top words",
                    "responses": {"200": ok("Stats", "Statistics."), **errors},
                }
            },
            "/api/try": {
                "post": {
                    "summary": "Which rule answers a message; nothing stored or sent",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["body"],
                                    "properties": {
                                        "body": {"type": "string", "maxLength": max_body_chars},
                                        "from": {"type": "string", "minLength": 1, "maxLength": 64},
                                        "to": {"type": "string", "minLength": 1, "maxLength": 64},
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": ok("Trial", "What would be answered."),
                        "413": too_large,
                        "415": error,
                        **errors,
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "string"}},
                },
                "ReadMark": {
                    "type": "object",
                    "required": ["sender", "read_upto"],
                    "properties": {"sender": {"type": "string"}, "read_upto": {"type": "integer"}},
                },
                "Delivery": {"type": "object", "properties": dataclass_properties(Delivery)},
                "Message": {
                    "type": "object",
                    "required": ["id", "sms_sid", "sender", "body", "outcome"],
                    "properties": message_props,
                },
                "MessagePage": {
                    "type": "object",
                    "required": ["messages", "next"],
                    "properties": {
                        "messages": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/Message"},
                        },
                        "next": _NULLABLE_STRING,
                    },
                },
                "Conversation": {
                    "type": "object",
                    "required": ["sender", "last_message_id"],
                    "properties": {
                        "sender": {"type": "string"},
                        "recipient": {"type": "string"},
                        "last_message_id": {"type": "integer"},
                        "last_at": {"type": "number"},
                        "last_at_iso": {"type": "string"},
                        "message_count": {"type": "integer"},
                        "unread": {"type": "boolean"},
                        "last_body": {"type": "string"},
                        "last_reply": _NULLABLE_STRING,
                        "last_outcome": {"type": "string"},
                    },
                },
                "ConversationPage": {
                    "type": "object",
                    "required": ["conversations", "next"],
                    "properties": {
                        "conversations": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/Conversation"},
                        },
                        "next": _NULLABLE_STRING,
                    },
                },
                "Thread": {
                    "type": "object",
                    "required": ["conversation", "messages"],
                    "properties": {
                        "conversation": {"$ref": "#/components/schemas/Conversation"},
                        "messages": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/Message"},
                        },
                    },
                },
                "Stats": {
                    "type": "object",
                    "required": ["total", "per_hour"],
                    "properties": {
                        "since": {"type": "number"},
                        "total": {"type": "integer"},
                        "hours": {"type": "array", "items": {"type": "number"}},
                        "per_hour": {
                            "type": "object",
                            "additionalProperties": {"type": "array", "items": {"type": "integer"}},
                        },
                        "outcomes": {"type": "object", "additionalProperties": {"type": "integer"}},
                        "latency_ms": {"type": "object", "additionalProperties": _NULLABLE_NUMBER},
                        "handler_ms": {"type": "object", "additionalProperties": _NULLABLE_NUMBER},
                        "top_keywords": {"type": "array", "items": {"type": "object"}},
                        "top_rules": {"type": "array", "items": {"type": "object"}},
                    },
                },
                "Trial": {
                    "type": "object",
                    "required": ["outcome"],
                    "properties": {
                        "sender": {"type": "string"},
                        "recipient": {"type": "string"},
                        "body": {"type": "string"},
                        "reply": _NULLABLE_STRING,
                        "rule": _NULLABLE_STRING,
                        "outcome": {"type": "string"},
                        "handler_ms": _NULLABLE_NUMBER,
                        "error": _NULLABLE_STRING,
                        "encoding": _NULLABLE_STRING,
                        "units": _NULLABLE_INT,
                        "parts": _NULLABLE_INT,
                        "template_id": _NULLABLE_STRING,
                        "dlt_reason": _NULLABLE_STRING,
                        "dlt_mode": {"type": "string"},
                        "dlt_matched": {"type": ["boolean", "null"]},
                        "guard": _NULLABLE_STRING,
                        "session_state": _NULLABLE_STRING,
                    },
                },
            },
        },
    }
