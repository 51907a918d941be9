"""What is known about the events and their deliveries: the newest events, and each
destination's health (undelivered, dead-lettered, lag, last error)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncEngine

from exosms.store.errors import sql_errors

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"


@dataclass(frozen=True, slots=True)
class Health:
    """One destination's state, as the inbox, the API and ``exosms events status`` show it."""

    destination: str
    pending: int
    dead: int
    delivered: int
    oldest_pending_at: float | None  # the lag: now minus this
    last_delivered_at: float | None
    last_error: str | None
    last_error_at: float | None


class EventReports:
    """Read-only reports over the events and ``forwards`` tables."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def recent(
        self, limit: int = 50, before: int | None = None, kind: str | None = None
    ) -> list[tuple[int, str, str, str, float, list[tuple[str, str, int, str | None]]]]:
        """The newest events (pk, event id, type, sender, time) with each destination's
        (name, state, attempts, last error)."""
        where = ["1 = 1"]
        params: dict[str, Any] = {"limit": limit}
        if before is not None:
            where.append("id < :before")
            params["before"] = before
        if kind:
            where.append("type = :kind")
            params["kind"] = kind
        with sql_errors():
            async with self.engine.connect() as conn:
                rows = (
                    await conn.execute(
                        text(
                            "SELECT id, event_id, type, sender, created_at FROM events"  # noqa: S608
                            f" WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT :limit"
                        ),
                        params,
                    )
                ).all()
                states: dict[int, list[tuple[str, str, int, str | None]]] = {}
                if rows:
                    for event, destination, state, attempts, error in (
                        await conn.execute(
                            text(
                                "SELECT event, destination, state, attempts, last_error"
                                " FROM forwards WHERE event IN :ids ORDER BY id"
                            ).bindparams(bindparam("ids", expanding=True)),
                            {"ids": [row[0] for row in rows]},
                        )
                    ).all():
                        states.setdefault(event, []).append((destination, state, attempts, error))
        return [(r[0], r[1], r[2], r[3], float(r[4]), states.get(r[0], [])) for r in rows]

    async def health(self, destinations: Sequence[str]) -> list[Health]:
        """Each destination's pending and dead counts, lag, and last error."""
        found = []
        with sql_errors():
            async with self.engine.connect() as conn:
                for name in destinations:
                    counts: dict[str, int] = dict(
                        (
                            await conn.execute(
                                text(
                                    "SELECT state, COUNT(*) FROM forwards"
                                    " WHERE destination = :d GROUP BY state"
                                ),
                                {"d": name},
                            )
                        ).all()
                    )
                    oldest = (
                        await conn.execute(
                            text(
                                "SELECT MIN(e.created_at) FROM forwards f JOIN events e"
                                " ON e.id = f.event WHERE f.destination = :d"
                                " AND f.state = 'pending'"
                            ),
                            {"d": name},
                        )
                    ).scalar()
                    last_delivered = (
                        await conn.execute(
                            text("SELECT MAX(delivered_at) FROM forwards WHERE destination = :d"),
                            {"d": name},
                        )
                    ).scalar()
                    error = (
                        await conn.execute(
                            text(
                                "SELECT last_error, next_attempt_at FROM forwards"
                                " WHERE destination = :d AND last_error IS NOT NULL"
                                " ORDER BY id DESC LIMIT 1"
                            ),
                            {"d": name},
                        )
                    ).first()
                    found.append(
                        Health(
                            destination=name,
                            pending=int(counts.get(PENDING, 0)),
                            dead=int(counts.get(DEAD, 0)),
                            delivered=int(counts.get(DELIVERED, 0)),
                            oldest_pending_at=float(oldest) if oldest is not None else None,
                            last_delivered_at=float(last_delivered)
                            if last_delivered is not None
                            else None,
                            last_error=error[0] if error else None,
                            last_error_at=None,
                        )
                    )
        return found
