"""The outbox as people read it: every SMS sent through Exotel's API, newest first, with its
delivery status, DLT template, who wrote it or decided on it, filtered by state and number."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from exosms.store.outbox import HELD, PENDING, POSTING, SENDING, UNKNOWN
from exosms.store.textsql import fetch_all

# The outbox states that wait for something (the rest are final and only grow): pending
# includes an SMS waiting for its retry; unknown and held wait for a person or a callback.
WAITING = (PENDING, SENDING, POSTING, UNKNOWN, HELD)

# What a person filters by, and the outbox states (and delivery statuses) each one means.
STATES: dict[str, str] = {
    "queued": "o.status IN ('pending', 'sending', 'posting')",
    "sent": "o.status = 'sent' AND (o.delivery_status IS NULL OR o.delivery_status NOT IN"
    " ('sent', 'delivered', 'failed', 'failed_dnd'))",
    "delivered": "o.status = 'sent' AND o.delivery_status IN ('sent', 'delivered')",
    "failed": "(o.status = 'failed' OR o.delivery_status IN ('failed', 'failed_dnd'))",
    "held": "o.status IN ('held', 'unknown')",
}
_COLUMNS = (
    "o.id, o.message_sid, o.to_number, o.body, o.template_id, o.status, o.delivery_status,"
    " o.detailed_status, o.last_error, o.attempts, o.created_at, o.sent_at, o.author,"
    " o.decided_by, o.decided_at, o.exotel_sid, o.parts"
)


def state_of(status: str, delivery_status: str | None) -> str:
    """The one word of :data:`STATES` an outgoing SMS is in, from the outbox's status and
    Exotel's delivery status (Exotel's ``sent`` is on the customer's phone): what the
    outbox page filters by and the thread shows."""
    if status in ("held", "unknown"):
        return "held"
    if status == "failed" or delivery_status in ("failed", "failed_dnd"):
        return "failed"
    if status == "sent":
        return "delivered" if delivery_status in ("sent", "delivered") else "sent"
    return "queued"


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One outgoing SMS as the outbox page shows it."""

    id: int
    message_sid: str | None  # the message it answers (a reply sent later, a webhook reply)
    to_number: str
    body: str
    template_id: str | None
    status: str
    delivery_status: str | None
    detailed_status: str | None
    last_error: str | None
    attempts: int
    created_at: float
    sent_at: float | None
    author: str | None
    decided_by: str | None
    decided_at: float | None
    exotel_sid: str | None
    parts: int | None

    @property
    def state(self) -> str:
        """The one word of :data:`STATES` this SMS is in."""
        return state_of(self.status, self.delivery_status)

    @property
    def may_resend(self) -> bool:
        """Whether a person may send it again (held, in doubt, or failed before Exotel)."""
        return self.status in ("held", "unknown", "failed")

    @property
    def may_give_up(self) -> bool:
        """Whether a person may give it up (held or in doubt)."""
        return self.status in ("held", "unknown")


class OutboxView:
    """Reads of the outbox for the page."""

    def __init__(self, engine: AsyncEngine) -> None:
        """Over the store's reading engine."""
        self.engine = engine

    async def page(
        self,
        *,
        state: str | None = None,
        number: str | None = None,
        before: int | None = None,
        limit: int = 50,
    ) -> list[OutboxEntry]:
        """The newest SMS (``before`` an id), in ``state`` (:data:`STATES`), to ``number``."""
        where = []
        params: dict[str, Any] = {"limit": limit}
        if state:
            where.append(STATES[state])
        if number:
            where.append("o.to_number = :number")
            params["number"] = number
        if before:
            where.append("o.id < :before")
            params["before"] = before
        sql = (
            f"SELECT {_COLUMNS} FROM outbox o"  # noqa: S608 (fixed clauses, bound values)
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY o.id DESC LIMIT :limit"
        )
        return [OutboxEntry(*row) for row in await fetch_all(self.engine, sql, **params)]

    async def waiting_by_state(self) -> dict[str, int]:
        """How many SMS are in each of the :data:`WAITING` states (through the status index)."""
        listed = ", ".join(f"'{state}'" for state in WAITING)  # our own constants
        rows = await fetch_all(
            self.engine,
            f"SELECT status, COUNT(*) FROM outbox WHERE status IN ({listed})"  # noqa: S608
            " GROUP BY status",
        )
        counts = {str(state): int(count) for state, count in rows}
        return {state: counts.get(state, 0) for state in WAITING}

    async def waiting(self) -> dict[str, int]:
        """How many SMS are queued, and how many are held for a person: the two counts a
        person acts on (both read through the status index, whatever the outbox's size)."""
        rows = await fetch_all(
            self.engine,
            "SELECT (SELECT COUNT(*) FROM outbox WHERE status IN ('pending', 'sending',"
            " 'posting')), (SELECT COUNT(*) FROM outbox WHERE status IN ('held', 'unknown'))",
        )
        return {"queued": int(rows[0][0]), "held": int(rows[0][1])}
