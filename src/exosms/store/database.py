"""One database, as the services each part of exosms needs from it.

The reply engine needs only the hot path (:class:`~exosms.store.base.Store`: claims,
answers, sessions, opt-outs, templates); the outbox worker only the :class:`Outbox`; the
inbox pages and the API only the read model (:class:`InboxQueries`) and the logins
(:class:`Logins`); the forwarder only the events (:class:`EventStore`). Each is given
just that. They share one connection pool, opened and closed here.
"""

from __future__ import annotations

from dataclasses import dataclass

from exosms.store.base import Store
from exosms.store.events import EventStore
from exosms.store.inbox import InboxQueries
from exosms.store.logins import Logins
from exosms.store.outbox import Outbox


@dataclass(frozen=True, slots=True)
class Database:
    """The services of one database; ``await open()`` before use, ``close()`` after."""

    store: Store
    outbox: Outbox
    inbox: InboxQueries
    logins: Logins
    events: EventStore

    async def open(self) -> None:
        """Connect (and on SQLite start the writer thread)."""
        await self.store.open()

    async def close(self) -> None:
        """Finish pending writes and disconnect."""
        await self.store.close()
