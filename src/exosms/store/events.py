"""The events table and each event's delivery to each destination (``forwards``).

Events are written by triggers (migration 0012) in the transaction of the row they
describe. Here they are handed to destinations and their deliveries tracked:

- ``fan_out``: each new event gets one ``forwards`` row per destination whose filter takes
  it, once (one process at a time: PostgreSQL's advisory lock, SQLite's write lock);
- ``lease``: a destination's next rows, never two of one sender at once out of order: a row
  is eligible only when every older undelivered row of its sender is eligible too (a run
  from the sender's oldest), so that deliveries keep each sender's order across processes;
- ``settle``: delivered, failed (due again later, or dead-lettered), or given back.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncEngine

from exosms.store.base import StoredMessage
from exosms.store.errors import sql_errors
from exosms.store.event_reports import EventReports
from exosms.store.schema import MESSAGE_COLUMNS

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"
FAN_OUT_BATCH = 1000  # events handed out per transaction
_FAN_OUT_LOCK = 7_263_914_001  # PostgreSQL advisory lock: one fan-out at a time
_OUTBOX_COLUMNS = (
    "id",
    "message_sid",
    "to_number",
    "sender",
    "body",
    "template_id",
    "status",
    "attempts",
    "exotel_sid",
    "last_error",
    "created_at",
    "sent_at",
    "parts",
    "delivery_status",
    "detailed_status",
    "sms_units",
)


@dataclass(frozen=True, slots=True)
class Route:
    """A destination's name and filter (an empty set takes everything; rule names
    casefolded, as the rules file compares them)."""

    name: str
    events: frozenset[str] = frozenset()
    recipients: frozenset[str] = frozenset()
    rules: frozenset[str] = frozenset()
    outcomes: frozenset[str] = frozenset()

    def takes(
        self, kind: str, recipient: str | None, rule: str | None, outcome: str | None
    ) -> bool:
        """Whether an event of type ``kind`` about a message to ``recipient``, answered by
        ``rule`` with ``outcome`` (``None``: not answered yet), goes to this destination."""
        if self.events and kind not in self.events:
            return False
        if self.recipients and recipient not in self.recipients:
            return False
        if self.rules and (rule is None or rule.casefold() not in self.rules):
            return False
        return not self.outcomes or outcome in self.outcomes


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One event, with the rows it refers to as they are stored."""

    pk: int
    event_id: str
    type: str
    sender: str
    recipient: str | None
    sms_sid: str | None
    outbox_id: int | None
    data: str | None
    created_at: float
    message: StoredMessage | None
    outbox: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Lease:
    """A forwards row taken for delivery."""

    id: int
    event: int
    sender: str
    attempts: int
    created_at: float  # the event's


@dataclass(frozen=True, slots=True)
class Failure:
    """A delivery that failed: due again at ``next_attempt_at``, or dead."""

    id: int
    error: str
    next_attempt_at: float
    dead: bool


# The unary plus keeps the planner off ix_forwards_due: walking ix_forwards_order in id order
# stops at the LIMIT, where a range on next_attempt_at reads and sorts every pending row.
LEASE_SQL = """
UPDATE forwards SET lease_until = :until WHERE id IN (
  SELECT f.id FROM forwards f
  WHERE f.destination = :destination AND f.state = 'pending' AND +f.next_attempt_at <= :now
    AND (f.lease_until IS NULL OR f.lease_until < :now)
    AND NOT EXISTS (
      SELECT 1 FROM forwards o
      WHERE o.destination = f.destination AND o.sender = f.sender AND o.state = 'pending'
        AND o.id < f.id
        AND (o.next_attempt_at > :now OR (o.lease_until IS NOT NULL AND o.lease_until >= :now)))
  ORDER BY f.id LIMIT :limit)
RETURNING id, event, sender, attempts
"""


INSERT_FORWARD_SQL = (
    "INSERT INTO forwards (event, destination, sender, state, attempts, next_attempt_at,"
    " created_at) VALUES (:event, :destination, :sender, 'pending', 0, :now, :now)"
)
FAILED_SQL = (
    "UPDATE forwards SET state = :state, attempts = attempts + 1, next_attempt_at = :next,"
    " lease_until = NULL, last_error = :error, delivered_at = NULL WHERE id = :id"
)


def failure_rows(failed: Sequence[Failure]) -> list[dict[str, Any]]:
    """The parameters of :data:`FAILED_SQL` for each failure."""
    return [
        {
            "state": DEAD if f.dead else PENDING,
            "next": f.next_attempt_at,
            "error": f.error[:1000],
            "id": f.id,
        }
        for f in failed
    ]


def forwards_for(rows: Sequence[Any], routes: Sequence[Route], now: float) -> list[dict[str, Any]]:
    """The delivery rows of events (id, type, sender, recipient, rule, outcome) to the
    destinations whose filter takes each."""
    return [
        {"event": pk, "destination": route.name, "sender": sender, "now": now}
        for pk, kind, sender, recipient, rule, outcome in rows
        for route in routes
        if route.takes(kind, recipient, rule, outcome)
    ]


class EventStore:
    """Events and their deliveries, over the store's async SQLAlchemy engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"
        self.reports = EventReports(engine)  # what the inbox, the API and the CLI show

    async def fan_out(self, routes: Sequence[Route], limit: int = FAN_OUT_BATCH) -> int:
        """Give each new event a delivery row per destination that takes it; the number of
        events handed out (each only once, whichever process does it)."""
        now = time.time()
        with sql_errors():
            async with self.engine.begin() as conn:
                if self.postgres:
                    await conn.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": _FAN_OUT_LOCK}
                    )
                rows = (
                    await conn.execute(
                        text(
                            "SELECT e.id, e.type, e.sender, e.recipient, m.rule, m.outcome"
                            " FROM events e"
                            " LEFT JOIN messages m ON m.sms_sid = e.sms_sid"
                            " WHERE e.fanned = 0 ORDER BY e.id LIMIT :limit"
                        ),
                        {"limit": limit},
                    )
                ).all()
                if not rows:
                    return 0
                forwards = forwards_for(rows, routes, now)
                if forwards:
                    await conn.execute(
                        text(INSERT_FORWARD_SQL),
                        forwards,
                    )
                await conn.execute(
                    text("UPDATE events SET fanned = 1 WHERE id IN :ids").bindparams(
                        bindparam("ids", expanding=True)
                    ),
                    {"ids": [row[0] for row in rows]},
                )
        return len(rows)

    async def lease(self, destination: str, limit: int, seconds: float) -> list[Lease]:
        """Take up to ``limit`` due rows of ``destination`` for ``seconds``, oldest first;
        each sender's rows are a run from its oldest undelivered one."""
        now = time.time()
        with sql_errors():
            async with self.engine.begin() as conn:
                if self.postgres:  # leases of one destination, one process at a time
                    await conn.execute(
                        text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
                        {"key": "exosms-forward:" + destination},
                    )
                rows = (
                    await conn.execute(
                        text(LEASE_SQL),
                        {
                            "until": now + seconds,
                            "destination": destination,
                            "now": now,
                            "limit": limit,
                        },
                    )
                ).all()
                if not rows:
                    return []
                created: dict[int, float] = dict(
                    (
                        await conn.execute(
                            text("SELECT id, created_at FROM events WHERE id IN :ids").bindparams(
                                bindparam("ids", expanding=True)
                            ),
                            {"ids": [row[1] for row in rows]},
                        )
                    ).all()
                )
        leases = [Lease(r[0], r[1], r[2], r[3], float(created.get(r[1], now))) for r in rows]
        return sorted(leases, key=lambda lease: lease.id)

    async def load(self, pks: Sequence[int]) -> dict[int, StoredEvent]:
        """The events ``pks`` with their message and outbound SMS, by primary key."""
        message_columns = ", ".join(f"m.{name}" for name in MESSAGE_COLUMNS)
        outbox_columns = ", ".join(f"o.{name}" for name in _OUTBOX_COLUMNS)
        query = text(
            "SELECT e.id, e.event_id, e.type, e.sender, e.recipient, e.sms_sid, e.outbox_id,"  # noqa: S608
            f" e.data, e.created_at, m.id IS NOT NULL, {message_columns},"
            f" o.id IS NOT NULL, {outbox_columns}"
            " FROM events e LEFT JOIN messages m ON m.sms_sid = e.sms_sid"
            " LEFT JOIN outbox o ON o.id = e.outbox_id WHERE e.id IN :ids"
        ).bindparams(bindparam("ids", expanding=True))
        with sql_errors():
            async with self.engine.connect() as conn:
                rows = (await conn.execute(query, {"ids": list(pks)})).all()
        found: dict[int, StoredEvent] = {}
        width = len(MESSAGE_COLUMNS)
        for row in rows:
            head, has_message = row[:9], row[9]
            message_values = row[10 : 10 + width]
            has_outbox = row[10 + width]
            outbox_values = row[11 + width :]
            found[int(head[0])] = StoredEvent(
                pk=int(head[0]),
                event_id=head[1],
                type=head[2],
                sender=head[3],
                recipient=head[4],
                sms_sid=head[5],
                outbox_id=head[6],
                data=head[7],
                created_at=float(head[8]),
                message=StoredMessage(*message_values) if has_message else None,
                outbox=dict(zip(_OUTBOX_COLUMNS, outbox_values, strict=True))
                if has_outbox
                else None,
            )
        return found

    async def settle(
        self,
        delivered: Sequence[int] = (),
        failed: Sequence[Failure] = (),
        released: Sequence[int] = (),
    ) -> None:
        """Record what came of leased rows: delivered, failed, or not tried (given back)."""
        now = time.time()
        with sql_errors():
            async with self.engine.begin() as conn:
                if delivered:
                    await conn.execute(
                        text(
                            "UPDATE forwards SET state = 'delivered', delivered_at = :now,"
                            " attempts = attempts + 1, lease_until = NULL WHERE id IN :ids"
                        ).bindparams(bindparam("ids", expanding=True)),
                        {"now": now, "ids": list(delivered)},
                    )
                if failed:
                    await conn.execute(
                        text(FAILED_SQL),
                        failure_rows(failed),
                    )
                if released:
                    await conn.execute(
                        text("UPDATE forwards SET lease_until = NULL WHERE id IN :ids").bindparams(
                            bindparam("ids", expanding=True)
                        ),
                        {"ids": list(released)},
                    )

    async def replay(
        self,
        routes: Sequence[Route],
        since: float,
        until: float | None = None,
        types: Sequence[str] = (),
    ) -> int:
        """Deliver again (or for the first time) every event since ``since`` to ``routes``,
        with the same event ids; the number of deliveries queued."""
        now = time.time()
        with sql_errors():
            async with self.engine.begin() as conn:
                rows = (
                    await conn.execute(
                        text(
                            "SELECT e.id, e.type, e.sender, e.recipient, m.rule, m.outcome"
                            " FROM events e LEFT JOIN messages m ON m.sms_sid = e.sms_sid"
                            " WHERE e.created_at >= :since AND e.created_at < :until"
                            " ORDER BY e.id"
                        ),
                        {"since": since, "until": until if until is not None else now + 1},
                    )
                ).all()
                forwards = [
                    {"event": pk, "destination": route.name, "sender": sender, "now": now}
                    for pk, kind, sender, recipient, rule, outcome in rows
                    for route in routes
                    if (not types or kind in types) and route.takes(kind, recipient, rule, outcome)
                ]
                if forwards:
                    await conn.execute(
                        text(INSERT_FORWARD_SQL),
                        forwards,
                    )
        return len(forwards)

    async def prune(self, before: float) -> int:
        """Delete events (and their deliveries) older than ``before``: with their messages."""
        with sql_errors():
            async with self.engine.begin() as conn:
                await conn.execute(
                    text(
                        "DELETE FROM forwards WHERE event IN"
                        " (SELECT id FROM events WHERE created_at < :before)"
                    ),
                    {"before": before},
                )
                gone = await conn.execute(
                    text("DELETE FROM events WHERE created_at < :before"), {"before": before}
                )
        return int(gone.rowcount or 0)
