"""The SMS people sent by hand from the inbox, and what tells a page that something changed.

A reply written in the inbox is an outbox row with no ``message_sid`` and an ``author``
(migration 0014); the thread shows those rows between the customer's messages, each with
its status as Exotel reports it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from exosms.store.textsql import fetch_all


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
        """The one word a person needs: Exotel's delivery status once known, else ours."""
        if self.delivery_status == "sent" and "DELIVERED" in (self.detailed_status or ""):
            return "delivered"  # Exotel's "sent" with DELIVERED_TO_HANDSET: on their phone
        if self.delivery_status:
            return self.delivery_status
        return {"pending": "queued", "sending": "queued", "posting": "sending"}.get(
            self.status, self.status
        )


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
            " WHERE to_number = :number AND message_sid IS NULL AND author IS NOT NULL"
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
