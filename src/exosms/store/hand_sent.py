"""The SMS people sent by hand from the inbox, and what tells a page that something changed.

A reply written in the inbox is an outbox row with no ``message_sid`` and an ``author``
(migration 0014); the thread shows those rows between the customer's messages, each with
its status as Exotel reports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from exosms.store.outbox_view import state_of
from exosms.store.textsql import fetch_all

Turn = tuple[float, str, Any]  # (when, "in" or "out", the message and delivery, or HandSent)


@dataclass(frozen=True, slots=True)
class HandSent:
    """One SMS sent by hand to a customer, as the outbox has it now."""

    id: int
    body: str
    template_id: str | None
    status: str  # the outbox's: pending, sending, posting, sent, failed, unknown, held
    delivery_status: str | None  # Exotel's, from the status callback: delivered, failed...
    detailed_status: str | None
    last_error: str | None
    author: str | None
    created_at: float
    parts: int | None

    @property
    def shown_status(self) -> str:
        """The one word a person needs, as the outbox page says it too."""
        return state_of(self.status, self.delivery_status)


class HandSentQueries:
    """Reads of the SMS sent by hand, and the marker of changes the pages poll."""

    def __init__(self, engine: AsyncEngine) -> None:
        """Over the store's reading engine."""
        self.engine = engine

    async def to_number(self, number: str, limit: int = 100) -> list[HandSent]:
        """The SMS sent by hand to ``number``, newest first."""
        rows = await fetch_all(
            self.engine,
            "SELECT id, body, template_id, status, delivery_status, detailed_status,"
            " last_error, author, created_at, parts FROM outbox"
            # Only a reply by hand has an author (and no message_sid): the partial index.
            " WHERE to_number = :number AND author IS NOT NULL"
            " ORDER BY created_at DESC, id DESC LIMIT :limit",
            number=number,
            limit=limit,
        )
        return [HandSent(*row) for row in rows]

    async def marker(self) -> str:
        """Changes when a message arrives, an SMS is queued or settled, or Exotel reports a
        delivery: what /inbox/changes gives the live pages to compare."""
        rows = await fetch_all(
            self.engine,
            "SELECT (SELECT COALESCE(MAX(id), 0) FROM messages),"
            " (SELECT COALESCE(MAX(id), 0) FROM outbox),"
            " (SELECT COUNT(*) FROM outbox"
            "  WHERE status IN ('pending', 'sending', 'posting', 'unknown')),"
            " (SELECT COALESCE(MAX(id), 0) FROM delivery_events)",
        )
        return ".".join(str(int(value)) for value in rows[0])


def interleave(
    items: Sequence[tuple[Any, Any]],
    hand: Sequence[HandSent],
    *,
    complete_from: bool,
    latest: bool,
) -> list[Turn]:
    """A page of a thread: its messages (oldest first, each with its delivery) and the SMS
    sent by hand between them, in time order. ``complete_from``: the page starts at the
    first message (else replies before its first message belong to an older page);
    ``latest``: it ends at the newest (else later replies belong to a newer page)."""
    since = items[0][0].received_at if items and not complete_from else 0.0
    until = None if latest else (items[-1][0].received_at if items else 0.0)
    turns: list[Turn] = [(m.received_at, "in", (m, d)) for m, d in items]
    turns += [
        (h.created_at, "out", h)
        for h in hand
        if h.created_at >= since and (until is None or h.created_at <= until)
    ]
    turns.sort(key=lambda turn: turn[0])
    return turns
