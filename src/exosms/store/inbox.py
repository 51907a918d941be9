"""What the inbox and its API read: conversations, threads, search, export and statistics.

Every query is keyset-paginated (``before`` an id) so that page 1,000 costs what page 1 does.
Text search uses SQLite FTS5 or PostgreSQL full-text search (see migration 0007).

Why one module (about 430 lines): every query here shares one filter builder, one keyset
pagination and one text search on two databases; login sessions (``store.logins``) and the
overview (``store.stats``) are apart.
"""

from __future__ import annotations

import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from exosms.outcomes import STORED_OUTCOMES
from exosms.store.base import StoredMessage
from exosms.store.schema import MESSAGE_COLUMNS
from exosms.store.stats import Overview, Stats
from exosms.store.textsql import execute, fetch_all

COLUMNS = ", ".join(f"m.{name}" for name in MESSAGE_COLUMNS)
OUTCOMES: tuple[str, ...] = tuple(o.value for o in STORED_OUTCOMES)
DLT_VERDICTS = ("matched", "warned", "refused", "unchecked")
_NEWEST = "m.received_at DESC, m.id DESC"
# Older than message :before (at :before_at); the first term lets the time index skip ahead.
_OLDER = (
    "m.received_at <= :before_at"
    " AND (m.received_at < :before_at OR (m.received_at = :before_at AND m.id < :before))"
)
RECENT_WINDOW = 5000  # messages PostgreSQL's text search reads by time before using its index
# The condition of the partial index ix_messages_problems (migration 0007).
PROBLEMS = "m.outcome NOT IN ('replied', 'no_reply')"


@dataclass(frozen=True, slots=True)
class Filters:
    """A search of the messages table. Empty fields do not filter."""

    text: str = ""  # words of the message (prefixes match)
    number: str = ""  # a full number (normalised) or some of its digits
    since: float | None = None  # epoch seconds, inclusive
    until: float | None = None  # epoch seconds, exclusive
    outcome: str = ""  # one of OUTCOMES
    rule: str = ""
    dlt: str = ""  # one of DLT_VERDICTS

    @property
    def is_empty(self) -> bool:
        return self == Filters()


@dataclass(frozen=True, slots=True)
class Delivery:
    """What Exotel's send API did with a reply sent through it (the outbox row)."""

    status: str
    delivery_status: str | None
    detailed_status: str | None
    exotel_sid: str | None
    attempts: int
    last_error: str | None
    sent_at: float | None
    sms_units: int | None


@dataclass(frozen=True, slots=True)
class Conversation:
    sender: str
    recipient: str
    last_message_id: int
    last_at: float
    message_count: int
    unread: bool
    body: str
    reply: str | None
    outcome: str | None
    guard: str | None
    assigned_to: str | None = None  # the person it is given to
    closed: bool = False  # closed, and nothing came in since
    name: str | None = None  # the contact's name, when the number has one


# The conversation lists people choose between, as SQL over ``conversations c``.
VIEWS = {
    "mine": "c.assigned_to = :me",
    "unassigned": "c.assigned_to IS NULL",
    "open": "(c.closed_upto IS NULL OR c.closed_upto < c.last_message_id)",
    "closed": "c.closed_upto >= c.last_message_id",
}
_CONVERSATION = (
    "SELECT c.sender, c.recipient, c.last_message_id, c.last_at, c.message_count,"
    " c.read_id, m.body, m.reply, m.outcome, m.guard, c.assigned_to, c.closed_upto, k.name"
    " FROM conversations c LEFT JOIN messages m ON m.id = c.last_message_id"
    " LEFT JOIN contacts k ON k.number = c.sender"
)


def _conversation(row: Sequence[Any]) -> Conversation:
    return Conversation(
        sender=row[0],
        recipient=row[1],
        last_message_id=row[2],
        last_at=row[3],
        message_count=row[4],
        unread=row[2] > row[5],
        body=row[6] if row[6] is not None else "",
        reply=row[7],
        outcome=row[8],
        guard=row[9],
        assigned_to=row[10],
        closed=row[11] is not None and row[11] >= row[2],
        name=row[12],
    )


def search_terms(text_: str) -> list[str]:
    """The words of a search box: letters, digits and combining marks (Devanagari's vowel
    signs belong to their word), lower-cased; everything else separates words."""
    words: list[str] = []
    current: list[str] = []
    for char in text_:
        if unicodedata.category(char)[0] in "LNM":
            current.append(char)
        elif current:
            words.append("".join(current))
            current = []
    if current:
        words.append("".join(current))
    return [word.lower() for word in words[:16]]


def _digits(number: str) -> str:
    return "".join(char for char in number if char.isdigit())


class InboxQueries:
    """Read-mostly queries for the inbox, over the store's async SQLAlchemy engine."""

    def __init__(
        self, engine: AsyncEngine, *, refresh: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        """``refresh``, when given, brings search and conversations up to date (SQLite
        indexes new messages in batches, off the request path); it runs before reads that
        depend on them."""
        self.engine = engine
        self._refresh = refresh
        self.postgres = engine.dialect.name == "postgresql"
        self._overview = Overview(engine)

    async def _all(self, sql: str, **params: Any) -> Sequence[Any]:
        return await fetch_all(self.engine, sql, **params)

    async def _write(self, sql: str, **params: Any) -> int:
        return await execute(self.engine, sql, **params)

    # -- conversations ------------------------------------------------------------------

    async def refresh(self) -> None:
        if self._refresh is not None:
            await self._refresh()

    async def latest_id(self) -> int:
        await self.refresh()
        rows = await self._all("SELECT COALESCE(MAX(id), 0) FROM messages")
        return int(rows[0][0])

    async def conversations(
        self,
        *,
        before: int | None = None,
        limit: int = 50,
        number: str = "",
        view: str = "",
        me: str = "",
    ) -> list[Conversation]:
        """The newest conversations first; ``view``: one of :data:`VIEWS` (``mine``: those
        assigned to ``me``)."""
        await self.refresh()
        where = ["c.last_message_id < :before"] if before else []
        params: dict[str, Any] = {"before": before, "limit": limit, "me": me}
        if number:  # some digits of the number, or a part of the contact's name
            where.append("(c.sender LIKE :number OR LOWER(k.name) LIKE :name)")
            params["number"] = f"%{_digits(number) or number}%"
            params["name"] = f"%{number.lower()}%"
        if view:
            where.append(VIEWS[view])
        sql = (
            _CONVERSATION
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY c.last_message_id DESC LIMIT :limit"
        )
        return [_conversation(row) for row in await self._all(sql, **params)]

    async def conversation(self, sender: str) -> Conversation | None:
        await self.refresh()
        rows = await self._all(_CONVERSATION + " WHERE c.sender = :sender", sender=sender)
        return _conversation(rows[0]) if rows else None

    async def assign(self, sender: str, user: str | None) -> None:
        """Give the conversation to ``user`` (``None``: to nobody)."""
        await self._write(
            "UPDATE conversations SET assigned_to = :user WHERE sender = :sender",
            sender=sender,
            user=user,
        )

    async def close(self, sender: str, closed: bool) -> None:
        """Close the conversation (until the customer writes again), or open it again."""
        await self._write(
            "UPDATE conversations SET closed_upto = "
            + ("last_message_id" if closed else "NULL")
            + " WHERE sender = :sender",
            sender=sender,
        )

    async def thread(
        self, sender: str, *, before: int | None = None, limit: int = 100
    ) -> list[tuple[StoredMessage, Delivery | None]]:
        """The sender's messages, newest first, each with its API delivery when there is one."""
        sql = (
            f"SELECT {COLUMNS}, o.status, o.delivery_status, o.detailed_status, o.exotel_sid,"
            " o.attempts, o.last_error, o.sent_at, o.sms_units FROM messages m"
            " LEFT JOIN outbox o ON o.message_sid = m.sms_sid WHERE m.sender = :sender"
            + (f" AND {_OLDER}" if before else "")
            + " ORDER BY m.received_at DESC, m.id DESC LIMIT :limit"
        )
        before_at = await self._received_at(before) if before else None
        rows = await self._all(sql, sender=sender, before=before, before_at=before_at, limit=limit)
        width = len(MESSAGE_COLUMNS)
        return [(StoredMessage(*row[:width]), _delivery(row[width:])) for row in rows]

    async def mark_read(self, sender: str, upto: int) -> None:
        await self._write(
            "UPDATE conversations SET read_id = :upto WHERE sender = :sender AND read_id < :upto",
            sender=sender,
            upto=upto,
        )

    async def unread_count(self) -> int:
        rows = await self._all("SELECT COUNT(*) FROM conversations WHERE last_message_id > read_id")
        return int(rows[0][0])

    # -- one message ----------------------------------------------------------------------

    async def message(self, message_id: int) -> tuple[StoredMessage, Delivery | None] | None:
        rows = await self._all(
            f"SELECT {COLUMNS}, o.status, o.delivery_status, o.detailed_status, o.exotel_sid,"
            " o.attempts, o.last_error, o.sent_at, o.sms_units FROM messages m"
            " LEFT JOIN outbox o ON o.message_sid = m.sms_sid WHERE m.id = :id",
            id=message_id,
        )
        if not rows:
            return None
        width = len(MESSAGE_COLUMNS)
        return StoredMessage(*rows[0][:width]), _delivery(rows[0][width:])

    async def delivery_events(self, exotel_sid: str) -> list[tuple[float, str | None, str]]:
        rows = await self._all(
            "SELECT received_at, status, payload FROM delivery_events"
            " WHERE exotel_sid = :sid ORDER BY id",
            sid=exotel_sid,
        )
        return [(row[0], row[1], row[2]) for row in rows]

    # -- search -------------------------------------------------------------------------

    async def _where(self, filters: Filters) -> tuple[str, list[str], dict[str, Any]]:
        """(FROM clause, WHERE clauses but the text search's, parameters) for ``filters``."""
        source = "messages m"
        clauses: list[str] = []
        params: dict[str, Any] = {}
        terms = search_terms(filters.text)
        if terms and not self.postgres:
            source = "messages_fts f JOIN messages m ON m.id = f.rowid"
            clauses.append("messages_fts MATCH :match")
            params["match"] = " ".join(f'"{term}"*' for term in terms)
        elif terms:
            params["tsquery"] = " & ".join(f"'{term}':*" for term in terms)
        elif filters.text.strip():
            clauses.append("1 = 0")  # only punctuation: nothing can match
        if filters.number:
            from exosms.numbers import normalise

            full = normalise(filters.number)
            if full.startswith("+") and len(_digits(full)) >= 10:
                clauses.append("m.sender = :sender")
                params["sender"] = full
            else:
                # Some digits: find the senders among the conversations (one row per sender),
                # then their messages by the sender index.
                await self.refresh()
                like = f"%{_digits(filters.number) or filters.number}%"
                senders = await self._all(
                    "SELECT sender FROM conversations WHERE sender LIKE :like LIMIT 1001",
                    like=like,
                )
                if len(senders) > 1000:  # so many: they are dense among the messages too
                    clauses.append("m.sender LIKE :sender_like")
                    params["sender_like"] = like
                elif senders:
                    names = [f":sender_{i}" for i in range(len(senders))]
                    clauses.append(f"m.sender IN ({', '.join(names)})")
                    params.update(
                        {name[1:]: row[0] for name, row in zip(names, senders, strict=True)}
                    )
                else:
                    clauses.append("1 = 0")
        if filters.since is not None:
            clauses.append("m.received_at >= :since")
            params["since"] = filters.since
        if filters.until is not None:
            clauses.append("m.received_at < :until")
            params["until"] = filters.until
        if filters.outcome == "pending":
            clauses.append("m.state = 'pending'")
        elif filters.outcome:
            clauses.append("m.outcome = :outcome")
            params["outcome"] = filters.outcome
            if filters.outcome not in ("replied", "no_reply"):
                clauses.append(PROBLEMS)  # the partial index's own words: the planner uses it
        if filters.rule:
            clauses.append("m.rule = :rule")
            params["rule"] = filters.rule
        if filters.dlt == "matched":
            clauses.append("m.dlt_template_id IS NOT NULL")
        elif filters.dlt == "refused":
            clauses.append(f"m.outcome = 'dlt_refused' AND {PROBLEMS}")
        elif filters.dlt == "warned":
            clauses.append(
                "m.dlt_template_id IS NULL AND m.dlt_reason IS NOT NULL"
                " AND m.outcome != 'dlt_refused'"
            )
        elif filters.dlt == "unchecked":
            clauses.append(
                "m.reply IS NOT NULL AND m.dlt_reason IS NULL AND m.dlt_template_id IS NULL"
            )
        return source, clauses, params

    async def search(
        self, filters: Filters, *, before: int | None = None, limit: int = 50
    ) -> list[StoredMessage]:
        """Messages ``filters`` selects, newest first, older than message ``before``.

        SQLite's text search walks the full-text index in id order; any other search walks an
        index that ends in received_at (sender, outcome, rule or time): newest by time.
        """
        source, clauses, params = await self._where(filters)
        if source.startswith("messages_fts"):
            await self.refresh()
            if before:
                clauses.append("f.rowid < :before")
                params["before"] = before
            sql = (
                f"SELECT {COLUMNS} FROM {source} WHERE {' AND '.join(clauses)}"
                " ORDER BY f.rowid DESC LIMIT :limit"
            )
            return [StoredMessage(*row) for row in await self._all(sql, limit=limit, **params)]
        if before:
            clauses.append(_OLDER)
            params["before"] = before
            params["before_at"] = await self._received_at(before)
        if "tsquery" in params:
            return await self._postgres_text_search(clauses, params, limit)
        where = " AND ".join(clauses) or "1 = 1"
        sql = f"SELECT {COLUMNS} FROM {source} WHERE {where} ORDER BY {_NEWEST} LIMIT :limit"
        return [StoredMessage(*row) for row in await self._all(sql, limit=limit, **params)]

    async def _postgres_text_search(
        self, clauses: list[str], params: dict[str, Any], limit: int
    ) -> list[StoredMessage]:
        """A common word is found quickly among the newest messages, a rare one through the
        full-text index; PostgreSQL's planner cannot tell which it is, so: first the newest
        RECENT_WINDOW messages (by time), then the index for everything older."""
        where = " AND ".join(clauses) or "1 = 1"
        text_match = "to_tsvector('simple', m.body) @@ to_tsquery('simple', :tsquery)"
        recent = await self._all(
            f"SELECT {COLUMNS} FROM (SELECT * FROM messages m WHERE {where}"
            f" ORDER BY {_NEWEST} LIMIT {RECENT_WINDOW}) m WHERE {text_match}"
            f" ORDER BY {_NEWEST} LIMIT :limit",
            limit=limit,
            **params,
        )
        found = [StoredMessage(*row) for row in recent]
        if len(found) == limit:
            return found
        edge = await self._all(
            f"SELECT m.received_at, m.id FROM messages m WHERE {where}"
            f" ORDER BY {_NEWEST} OFFSET {RECENT_WINDOW - 1} LIMIT 1",
            **params,
        )
        if not edge:
            return found  # the window held every candidate
        older = await self._all(
            f"SELECT {COLUMNS} FROM messages m WHERE {where} AND {text_match}"
            " AND m.received_at <= :edge_at AND (m.received_at < :edge_at OR m.id < :edge_id)"
            # "+ 0": sort the few matches rather than walk the time index past every message
            " ORDER BY m.received_at + 0 DESC, m.id DESC LIMIT :rest",
            rest=limit - len(found),
            edge_at=edge[0][0],
            edge_id=edge[0][1],
            **params,
        )
        return found + [StoredMessage(*row) for row in older]

    async def _received_at(self, message_id: int) -> float:
        rows = await self._all("SELECT received_at FROM messages WHERE id = :id", id=message_id)
        if rows:
            return float(rows[0][0])
        # A pruned message: continue from the next older id still stored.
        rows = await self._all(
            "SELECT received_at FROM messages WHERE id < :id ORDER BY id DESC LIMIT 1",
            id=message_id,
        )
        return float(rows[0][0]) + 1e-6 if rows else float("-inf")

    async def stream(self, filters: Filters, *, chunk: int = 1000) -> AsyncIterator[StoredMessage]:
        """Every message ``filters`` selects, newest first, ``chunk`` rows per query."""
        before: int | None = None
        while True:
            rows = await self.search(filters, before=before, limit=chunk)
            for row in rows:
                yield row
            if len(rows) < chunk:
                return
            before = rows[-1].id

    async def rules(self) -> list[str]:
        # A loose index scan: one seek in ix_messages_rule per distinct rule, not a full scan.
        rows = await self._all(
            "WITH RECURSIVE r(rule) AS (SELECT MIN(rule) FROM messages WHERE rule IS NOT NULL"
            " UNION ALL"
            " SELECT (SELECT MIN(rule) FROM messages WHERE rule > r.rule) FROM r"
            " WHERE r.rule IS NOT NULL) SELECT rule FROM r WHERE rule IS NOT NULL LIMIT 500"
        )
        return [row[0] for row in rows]

    # -- statistics ---------------------------------------------------------------------

    async def stats(
        self, *, days: int = 7, utc_offset: float = 0.0, max_age: float = 30.0
    ) -> Stats:
        """The overview, computed at most once per ``max_age`` seconds per process."""
        return await self._overview.stats(days=days, utc_offset=utc_offset, max_age=max_age)

    async def is_opted_out(self, sender: str, recipient: str) -> bool:
        rows = await self._all(
            "SELECT 1 FROM optouts WHERE sender = :sender AND recipient IN (:recipient, '*')",
            sender=sender,
            recipient=recipient,
        )
        return bool(rows)


def _delivery(row: Sequence[Any]) -> Delivery | None:
    if row[0] is None:
        return None
    return Delivery(
        status=row[0],
        delivery_status=row[1],
        detailed_status=row[2],
        exotel_sid=row[3],
        attempts=row[4],
        last_error=row[5],
        sent_at=row[6],
        sms_units=row[7],
    )
