"""Every event type, made by the real triggers on both stores, matches docs/event.schema.json."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jsonschema
import pytest
from sqlalchemy import text

from exosms.forwarding.envelope import ANSWER_FIELDS, RECEIVED_FIELDS, build
from exosms.result import Result
from exosms.store import Completion, NewMessage
from exosms.store.base import StoredMessage
from exosms.store.opening import OpenedStore

pytestmark = pytest.mark.anyio
SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "docs" / "event.schema.json").read_text()
)
A = "+919052161119"


async def test_each_event_type_matches_the_published_schema(store: OpenedStore) -> None:
    message = NewMessage(
        "v1", A, "09052161119", "56070", "56070", "STOP", "q", "", None, time.time(), "GET"
    )
    await store.claim(message, "me", time.time() + 5)
    await store.complete(Completion("v1", Result(None, None, "opted_out"), time.time()))
    await store.set_optout(A, "56070", True)
    await store.set_optout(A, "56070", False)
    row = await store.outbox.enqueue(A, "Your order ships today", message_sid="v1")
    assert row is not None
    await store.outbox.record_status({"SmsSid": "x", "Status": "delivered"}, row)
    async with store.inbox.engine.begin() as conn:  # held for a person (the worker's verdict)
        await conn.execute(text("UPDATE outbox SET status = 'held' WHERE id = :id"), {"id": row})
    recent = await store.events.reports.recent(20)
    events = await store.events.load([pk for pk, *_ in recent])
    kinds = {event.type for event in events.values()}
    assert kinds == {
        "sms.received",
        "sms.answered",
        "sms.opted_out",
        "sms.opted_in",
        "sms.delivery",
        "reply.held",
    }
    validator = jsonschema.Draft202012Validator(SCHEMA)
    for event in events.values():
        payload = build(event).payload
        errors = [e.message for e in validator.iter_errors(payload)]
        assert not errors, (event.type, errors, payload)
    delivery = next(e for e in events.values() if e.type == "sms.delivery")
    assert build(delivery).payload["data"]["delivery"]["status"] == "delivered"


def test_the_schema_names_every_field_an_event_carries() -> None:
    message = SCHEMA["$defs"]["message"]["properties"]
    assert set(RECEIVED_FIELDS + ANSWER_FIELDS) <= set(message)
    assert set(message) <= set(StoredMessage.__dataclass_fields__)
