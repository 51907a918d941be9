"""The store protocol: what the engine needs from a database, and the values it passes."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from exosms.dlt import Template
from exosms.guards import GuardQuery, GuardState
from exosms.result import Result

OWNER_LEASE = 5.0  # seconds a process's claims stay its own after its last lease renewal


class StoreUnavailable(Exception):
    """The database did not answer or refused a write; the request should be retried."""


class ClaimLost(StoreUnavailable):
    """The answer found no message row to complete: the database lost the claim (restored
    from a backup, failed over to a replica that lacked it). Nothing was stored, so nothing
    may be answered."""

    def __init__(self, sms_sid: str) -> None:
        super().__init__(f"no stored message for SmsSid {sms_sid} to complete: its claim was lost")


class AnswerPending(StoreUnavailable):
    """Another live process holds the SmsSid and has not stored its answer yet."""


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
    taken_over: bool = False  # with CLAIMED: from an owner whose lease ran out


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
class OutboxWrite:
    """A reply to send through Exotel's API, queued in the same transaction as its answer."""

    to_number: str
    body: str
    template_id: str | None = None
    parts: int | None = None
    sender: str | None = None

    def row(self, message_sid: str, now: float) -> tuple[Any, ...]:
        """The values of the outbox INSERT, in the order the stores write them."""
        return (
            message_sid,
            self.to_number,
            self.sender,
            self.body,
            self.template_id,
            now,
            now,
            self.parts,
        )


@dataclass(slots=True)
class Completion:
    """The answer for one SmsSid, written once: the result and what is saved beside it."""

    sms_sid: str
    result: Result
    answered_at: float
    session: SessionWrite | None = None  # saved in the same transaction as the answer
    outbox: OutboxWrite | None = None  # queued in the same transaction (webhook replies)

    @property
    def reply(self) -> str | None:
        return self.result.reply

    @property
    def outcome(self) -> str:
        return self.result.outcome

    def row(self) -> tuple[Any, ...]:
        """The values of the answer's UPDATE, in the order the stores write them."""
        r = self.result
        return (
            r.reply,
            r.rule,
            r.outcome,
            r.handler_ms,
            r.error,
            self.answered_at,
            r.encoding,
            r.units,
            r.parts,
            r.template_id,
            r.dlt_reason,
            r.guard,
            r.refused_reply,
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
    takeovers: int = 0  # times the claim was taken over from a process that stopped answering
    refused_reply: str | None = None  # the reply the DLT check (or the part limit) refused


@dataclass(frozen=True, slots=True)
class OptOut:
    sender: str
    recipient: str  # "*": every number
    created_at: float
    source: str


# Works out the answer of a claimed SMS from the sender's standing (no user code, no I/O).
Finish = Callable[[GuardState | None], Completion]


class Store(Protocol):
    """A database holding messages. Implementations: :class:`~exosms.store.sqlite.SqliteStore`,
    :class:`~exosms.store.postgres.PostgresStore`.

    ``claim`` and ``complete`` are durable when they return: the caller may answer Exotel.
    A pending claim belongs to its owner while the owner renews its lease (``renew_lease``);
    only a claim that is released, the caller's own, or whose owner's lease ran out more than
    :data:`OWNER_LEASE` seconds after the database started may be claimed again.
    """

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    # claim, complete and claim_and_complete return an awaitable: a coroutine, or (SQLite's
    # writer) a future, which the engine waits for with a timer and no task of its own.

    def claim(
        self, message: NewMessage, owner: str, expires: float, guard: GuardQuery | None = None
    ) -> Awaitable[Claim]:
        """Store ``message`` and claim its SmsSid, or report who already has it.

        With ``guard``, apply its opt-out change and read the sender's standing in the same
        transaction (``Claim.guard``).
        """
        ...

    def complete(self, completion: Completion) -> Awaitable[str | None]:
        """Record the answer; return the stored reply (another process's if it was first).

        Raises :class:`ClaimLost` when there is no message row to complete.
        """
        ...

    def claim_and_complete(
        self,
        message: NewMessage,
        owner: str,
        expires: float,
        guard: GuardQuery | None,
        finish: Finish,
    ) -> Awaitable[tuple[Claim, Completion | None]]:
        """:meth:`claim`, then, when claimed, the answer ``finish`` works out from the
        sender's standing (``Claim.guard``), stored in the same write where the store can
        (SQLite: one transaction, one fsync). For replies that run no user code: ``finish``
        is quick and pure, and may run on the store's own thread. Returns the claim and,
        when claimed, the completion stored (``Claim.reply`` is then the stored reply).
        An exception ``finish`` raises is raised, the claim left pending.
        """
        ...

    async def release(self, sms_sids: Sequence[str], owner: str) -> None:
        """Give up ``owner``'s pending claims on ``sms_sids`` (their handlers never answered)."""
        ...

    async def renew_lease(self, owner: str, until: float) -> None:
        """Keep ``owner``'s claims its own until ``until`` (epoch seconds)."""
        ...

    async def drop_lease(self, owner: str) -> None:
        """``owner`` is stopping: its lease ends now."""
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

    async def set_optout(
        self, sender: str, recipient: str, opted_out: bool, source: str = "cli"
    ) -> bool:
        """Opt ``sender`` out of (or back in to) ``recipient`` ("*": all); True if it changed.
        ``source``: who did it (``cli``, ``inbox``), kept with an opt-out."""
        ...

    async def save_templates(self, templates: Sequence[Template]) -> tuple[int, int]:
        """Insert or update templates by id; returns (inserted, updated). Unchanged: neither."""
        ...

    async def load_templates(self) -> list[Template]: ...

    async def templates_version(self) -> str:
        """Changes whenever the stored templates change (for cheap reload checks)."""
        ...

    async def record_late_reply(
        self, sms_sid: str, text: str, outbox: OutboxWrite | None = None
    ) -> None:
        """Note on the message the reply that goes out through the API after the deadline,
        and queue it (``outbox``) in the same transaction: queued once, however often."""
        ...

    async def count_before(self, before: float) -> int:
        """How many messages were received before ``before`` (what a prune would delete)."""
        ...

    async def prune(self, before: float, batch: int = 1000) -> int:
        """Delete messages received before ``before`` in batches; returns how many."""
        ...
