"""The store protocol: what the engine needs from a database, and the values it passes."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from exosms.dlt import Template
from exosms.guards import GuardQuery, GuardState

if TYPE_CHECKING:
    from exosms.inbox.queries import InboxQueries
    from exosms.store.outbox import Outbox


class StoreUnavailable(Exception):
    """The database did not answer or refused a write; the request should be retried."""


class ClaimStatus(enum.Enum):
    CLAIMED = "claimed"  # this request owns the SmsSid: call the handler
    ANSWERED = "answered"  # an answer is stored: replay it
    BUSY = "busy"  # another process is computing the answer: wait for it


@dataclass(slots=True)  # not frozen: built per request; frozen init is 3x slower
class Claim:
    status: ClaimStatus
    reply: str | None = None
    expires: float | None = None
    guard: GuardState | None = None  # with CLAIMED, when a GuardQuery was given


@dataclass(slots=True)  # not frozen: built per request; frozen init is 3x slower
class NewMessage:
    """An incoming SMS as first stored, before its reply is known. Times are epoch seconds."""

    sms_sid: str
    sender: str
    sender_raw: str
    recipient: str
    recipient_raw: str
    body: str
    query: str
    date_raw: str
    exotel_date: float | None
    received_at: float
    method: str

    def row(self, owner: str, expires: float) -> tuple[Any, ...]:
        """The values of a pending messages row, in the order the stores insert them."""
        return (
            self.sms_sid,
            self.sender,
            self.sender_raw,
            self.recipient,
            self.recipient_raw,
            self.body,
            self.query,
            self.date_raw,
            self.exotel_date,
            self.received_at,
            self.method,
            owner,
            expires,
        )


@dataclass(slots=True)
class Completion:
    """The answer for one SmsSid, written once."""

    sms_sid: str
    reply: str | None
    rule: str | None
    outcome: str
    handler_ms: float | None
    error: str | None
    answered_at: float
    reply_encoding: str | None = None
    reply_units: int | None = None
    reply_parts: int | None = None
    dlt_template_id: str | None = None
    dlt_reason: str | None = None
    guard: str | None = None
    session: SessionWrite | None = None  # saved in the same transaction as the answer

    def row(self) -> tuple[Any, ...]:
        """The values of the answer's UPDATE, in the order the stores write them."""
        return (
            self.reply,
            self.rule,
            self.outcome,
            self.handler_ms,
            self.error,
            self.answered_at,
            self.reply_encoding,
            self.reply_units,
            self.reply_parts,
            self.dlt_template_id,
            self.dlt_reason,
            self.guard,
            self.sms_sid,
        )


@dataclass(slots=True)
class SessionWrite:
    sender: str
    recipient: str
    data: str  # JSON object; "{}" clears the session
    expires_at: float


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One row of the messages table. Times are epoch seconds (UTC)."""

    id: int
    sms_sid: str
    sender: str
    sender_raw: str
    recipient: str
    recipient_raw: str
    body: str
    query: str
    date_raw: str
    exotel_date: float | None
    received_at: float
    method: str
    state: str
    reply: str | None
    rule: str | None
    outcome: str | None
    handler_ms: float | None
    error: str | None
    answered_at: float | None
    fetch_count: int
    last_fetch_at: float | None
    reply_encoding: str | None = None
    reply_units: int | None = None
    reply_parts: int | None = None
    dlt_template_id: str | None = None
    dlt_reason: str | None = None
    guard: str | None = None
    late_reply: str | None = None


@dataclass(frozen=True, slots=True)
class OptOut:
    sender: str
    recipient: str  # "*": every number
    created_at: float
    source: str


class Store(Protocol):
    """A database holding messages. Implementations: :class:`~exosms.store.sqlite.SqliteStore`.

    ``claim`` and ``complete`` are durable when they return: the caller may answer Exotel.
    """

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def claim(
        self, message: NewMessage, owner: str, expires: float, guard: GuardQuery | None = None
    ) -> Claim:
        """Store ``message`` and claim its SmsSid, or report who already has it.

        With ``guard``, apply its opt-out change and read the sender's standing in the same
        transaction (``Claim.guard``).
        """
        ...

    async def complete(self, completion: Completion) -> str | None:
        """Record the answer; return the stored reply (another process's if it was first)."""
        ...

    def record_fetch(self, sms_sid: str, at: float) -> None:
        """Count one more fetch of a stored answer (not awaited, not durable)."""
        ...

    async def lookup(self, sms_sid: str) -> StoredMessage | None: ...

    async def recent(self, limit: int) -> list[StoredMessage]: ...

    async def ping(self) -> None:
        """Raise :class:`StoreUnavailable` when the database does not answer."""
        ...

    async def load_session(self, sender: str, recipient: str) -> dict[str, object] | None:
        """The sender's unexpired session data, or ``None``."""
        ...

    async def list_optouts(self) -> list[OptOut]: ...

    async def set_optout(self, sender: str, recipient: str, opted_out: bool) -> bool:
        """Opt ``sender`` out of (or back in to) ``recipient`` ("*": all); True if it changed."""
        ...

    async def save_templates(self, templates: Sequence[Template]) -> tuple[int, int]:
        """Insert or update templates by id; returns (inserted, updated). Unchanged: neither."""
        ...

    async def load_templates(self) -> list[Template]: ...

    async def templates_version(self) -> str:
        """Changes whenever the stored templates change (for cheap reload checks)."""
        ...

    @property
    def outbox(self) -> Outbox:
        """Outgoing SMS (Exotel's send API), in the same database."""
        ...

    @property
    def inbox(self) -> InboxQueries:
        """What the inbox pages and the JSON API read."""
        ...

    async def record_late_reply(self, sms_sid: str, text: str) -> None:
        """Note on the message the reply that went out through the API after the deadline."""
        ...

    async def prune(self, before: float, batch: int = 1000) -> int:
        """Delete messages received before ``before`` in batches; returns how many."""
        ...
