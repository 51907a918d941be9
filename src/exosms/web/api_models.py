"""The JSON the API answers with, as pydantic models: the endpoints build their answers
through them and the OpenAPI document's schemas are derived from them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, WithJsonSchema

REF = "#/components/schemas/{model}"


def _ref(name: str) -> Any:
    return WithJsonSchema({"$ref": REF.format(model=name)})


def _list_of(name: str) -> Any:
    return WithJsonSchema({"type": "array", "items": {"$ref": REF.format(model=name)}})


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Error(_Model):
    """Every refusal: the reason, in one line."""

    error: str


class ReadMark(_Model):
    """A conversation read up to a message."""

    sender: str
    read_upto: int


class Conversation(_Model):
    """One row per customer number."""

    sender: str
    recipient: str
    last_message_id: int
    last_at: float
    last_at_iso: str
    message_count: int
    unread: bool
    last_body: str
    last_reply: str | None
    last_outcome: str


class MessagePage(_Model):
    messages: Annotated[list[dict[str, Any]], _list_of("Message")]
    next: str | None


class ConversationPage(_Model):
    conversations: list[Conversation]
    next: str | None


class Thread(_Model):
    conversation: Conversation
    messages: Annotated[list[dict[str, Any]], _list_of("Message")]


class WordCount(_Model):
    word: str
    count: int


class RuleCount(_Model):
    rule: str
    count: int


class Stats(_Model):
    """The last 7 days, in hours of the display time zone."""

    since: float
    total: int
    hours: list[float]
    per_hour: dict[str, list[int]]
    outcomes: dict[str, int]
    latency_ms: dict[str, float | None]
    handler_ms: dict[str, float | None]
    top_keywords: list[WordCount]
    top_rules: list[RuleCount]


class Forward(_Model):
    """One event's delivery to one destination."""

    destination: str
    state: Literal["pending", "delivered", "dead"]
    attempts: int
    last_error: str | None


class Event(_Model):
    """One stored event (docs/forwarding.md) and where it went."""

    pk: int
    id: str
    type: str
    sender: str
    time: float
    forwards: list[Forward]


class EventPage(_Model):
    events: list[Event]
    next: str | None


class DestinationHealth(_Model):
    """A forwarding destination's state."""

    name: str
    kind: str
    pending: int
    dead: int
    delivered: int
    lag_seconds: float
    last_delivered_at: float | None
    last_error: str | None


class Forwarding(_Model):
    destinations: list[DestinationHealth]


class Replayed(_Model):
    queued: int
    destinations: list[str]


MODELS: tuple[type[BaseModel], ...] = (
    Error,
    ReadMark,
    Conversation,
    MessagePage,
    ConversationPage,
    Thread,
    WordCount,
    RuleCount,
    Stats,
    Forward,
    Event,
    EventPage,
    DestinationHealth,
    Forwarding,
    Replayed,
)
