"""The event envelope: one versioned JSON object per event, the same for every destination.

docs/event.schema.json is its JSON Schema (a test keeps the two in step).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from exosms.store.events import StoredEvent

SCHEMA = "exosms.event/1"
# What a received message is, before it is answered; the answer adds the rest.
RECEIVED_FIELDS = (
    "id",
    "sms_sid",
    "sender",
    "sender_raw",
    "recipient",
    "recipient_raw",
    "body",
    "date_raw",
    "exotel_date",
    "received_at",
    "method",
)
ANSWER_FIELDS = (
    "state",
    "reply",
    "rule",
    "outcome",
    "handler_ms",
    "error",
    "answered_at",
    "reply_encoding",
    "reply_units",
    "reply_parts",
    "dlt_template_id",
    "dlt_reason",
    "guard",
    "late_reply",
    "refused_reply",
)
_DATA_KEY = {
    "sms.delivery": "delivery",
    "sms.opted_out": "opt_out",
    "sms.opted_in": "opt_out",
    "reply.held": "held",
}


@dataclass(frozen=True, slots=True)
class Envelope:
    """One event ready to send: its id, type, sender (the order key) and JSON body."""

    id: str
    type: str
    sender: str
    timestamp: float
    body: bytes

    @property
    def payload(self) -> dict[str, Any]:
        """The envelope as a JSON object."""
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


def build(event: StoredEvent) -> Envelope:
    """The envelope of ``event``: the message (and outbound SMS) as stored."""
    data: dict[str, Any] = {}
    if event.message is not None:
        names = RECEIVED_FIELDS if event.type == "sms.received" else RECEIVED_FIELDS + ANSWER_FIELDS
        data["message"] = {name: getattr(event.message, name) for name in names}
    if event.outbox is not None:
        data["outbound"] = event.outbox
    if event.data:
        data[_DATA_KEY.get(event.type, "detail")] = json.loads(event.data)
    payload = {
        "schema": SCHEMA,
        "id": event.event_id,
        "type": event.type,
        "time": datetime.fromtimestamp(event.created_at, UTC).isoformat(),
        "timestamp": event.created_at,
        "sms_sid": event.sms_sid,
        "sender": event.sender,
        "recipient": event.recipient,
        "data": data,
    }
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return Envelope(event.event_id, event.type, event.sender, event.created_at, body)
