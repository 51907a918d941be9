"""The OpenAPI description of /api, built from the typed models the API answers with.

The schemas are pydantic's, derived from the API's models (:mod:`exosms.web.api_models`) and
from the stored dataclasses (:class:`~exosms.store.base.StoredMessage`,
:class:`~exosms.store.inbox.Delivery`, :class:`~exosms.result.Result`); the paths and
parameters are written here. The tests check the running API against it (schemathesis).
Why one module (about 400 lines): most of it is the one declaration of the paths; the
models they refer to are :mod:`exosms.web.api_models`.
"""

from __future__ import annotations

import functools
from typing import Any

from pydantic import TypeAdapter
from pydantic.json_schema import models_json_schema

from exosms.result import Result
from exosms.settings_sections import EVENT_TYPES
from exosms.store.base import StoredMessage
from exosms.store.inbox import DLT_VERDICTS, OUTCOMES, Delivery
from exosms.web.api_models import MODELS, REF
from exosms.web.filters import MAX_ID

NO_NUL = "^[^\\x00]*$"
_NULLABLE_STRING = {"type": ["string", "null"]}
_MOMENT = {
    "description": "Epoch seconds, or an ISO 8601 date-time with its offset.",
    "anyOf": [{"type": "number"}, {"type": "string", "format": "date-time"}],
}


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


def _schemas() -> dict[str, Any]:
    _, found = models_json_schema([(m, "serialization") for m in MODELS], ref_template=REF)
    schemas: dict[str, Any] = found["$defs"]
    # The message as the API gives it: every stored field (StoredMessage, the one
    # declaration of the row), with what the API adds and says about some.
    schemas["Message"] = {
        "type": "object",
        "required": ["id", "sms_sid", "sender", "body", "outcome"],
        "properties": {
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
            "delivery": {"$ref": REF.format(model="Delivery")},
        },
    }
    schemas["Delivery"] = {"type": "object", "properties": dataclass_properties(Delivery)}
    # What /api/try answers: the Result (the engine's one record) and where it was tried.
    schemas["Trial"] = {
        "type": "object",
        "required": ["outcome"],
        "properties": {
            "sender": {"type": "string"},
            "recipient": {"type": "string"},
            "body": {"type": "string"},
            **dataclass_properties(Result),
            "dlt_mode": {"type": "string"},
            "dlt_matched": {"type": ["boolean", "null"]},
            "session_state": _NULLABLE_STRING,
        },
    }
    return schemas


@functools.cache  # built once per process: pydantic derives part of it
def openapi_document(
    max_body_chars: int = 1600, destinations: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The OpenAPI 3.1 description of /api (``max_body_chars``: the /api/try limit;
    ``destinations``: the forwarding destinations' names, the ones a replay may name)."""
    names: dict[str, Any] = {"type": "string"}
    if destinations:
        names["enum"] = list(destinations)

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
            "/api/events": {
                "get": {
                    "summary": "The newest events kept for forwarding, and where each went",
                    "parameters": [
                        query(
                            "type",
                            "Only this event type.",
                            {"type": "string", "enum": ["", *EVENT_TYPES]},
                        ),
                        *page,
                    ],
                    "responses": {"200": ok("EventPage", "A page of events."), **errors},
                }
            },
            "/api/forwarding": {
                "get": {
                    "summary": "Each forwarding destination: waiting, lag, dead, last error",
                    "responses": {"200": ok("Forwarding", "The destinations."), **errors},
                }
            },
            "/api/events/replay": {
                "post": {
                    "summary": "Deliver the events of a period again, with their ids",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["since"],
                                    "properties": {
                                        "since": _MOMENT,
                                        "until": _MOMENT,
                                        "destinations": {"type": "array", "items": names},
                                        "types": {
                                            "type": "array",
                                            "items": {"type": "string", "enum": list(EVENT_TYPES)},
                                        },
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": ok("Replayed", "How many deliveries were queued."),
                        "409": error,
                        "413": too_large,
                        "415": error,
                        **errors,
                    },
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
            "schemas": _schemas(),
        },
    }
