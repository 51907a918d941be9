"""What the inbox and its API read: conversations, threads, search, export and statistics.

Every query is keyset-paginated (``before`` an id) so that page 1,000 costs what page 1 does.
Text search uses SQLite FTS5 or PostgreSQL full-text search (see migration 0007).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
import unicodedata
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from exosms.outcomes import STORED_OUTCOMES
from exosms.store.base import StoredMessage, StoreUnavailable
from exosms.store.schema import MESSAGE_COLUMNS

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


@dataclass(frozen=True, slots=True)
class Stats:
    """The overview: the last ``days`` days, in hours of the display time zone."""

    since: float
    hours: list[float]  # the start of each hour, epoch seconds
    per_hour: dict[str, list[int]]  # outcome -> count in each hour
    outcomes: dict[str, int]
    latency_ms: dict[str, float | None]  # p50, p90, p99 of receipt-to-answer time
    handler_ms: dict[str, float | None]
    top_keywords: list[tuple[str, int]]
    top_rules: list[tuple[str, int]]
    total: int
    computed_ms: float = 0.0


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
        self._stats_cache: tuple[float, tuple[int, float], Stats] | None = None
        self._stats_lock = asyncio.Lock()
        self._login_lock = asyncio.Lock()  # one reservation at a time in this process
        self._hours: dict[float, _Hour] = {}
        self._hours_offset: float | None = None

    async def _all(self, sql: str, **params: Any) -> Sequence[Any]:
        try:
            async with self.engine.connect() as conn:
                return (await conn.execute(text(sql), params)).all()
        except SQLAlchemyError as error:
            raise StoreUnavailable(str(error.__cause__ or error)) from error

    async def _write(self, sql: str, **params: Any) -> int:
        try:
            async with self.engine.begin() as conn:
                return (await conn.execute(text(sql), params)).rowcount
        except SQLAlchemyError as error:
            raise StoreUnavailable(str(error.__cause__ or error)) from error

    # -- conversations ------------------------------------------------------------------

    async def refresh(self) -> None:
        if self._refresh is not None:
            await self._refresh()

    async def latest_id(self) -> int:
        await self.refresh()
        rows = await self._all("SELECT COALESCE(MAX(id), 0) FROM messages")
        return int(rows[0][0])

    async def conversations(
        self, *, before: int | None = None, limit: int = 50, number: str = ""
    ) -> list[Conversation]:
        await self.refresh()
        where = ["c.last_message_id < :before"] if before else []
        params: dict[str, Any] = {"before": before, "limit": limit}
        if number:
            where.append("c.sender LIKE :number")
            params["number"] = f"%{_digits(number) or number}%"
        sql = (
            "SELECT c.sender, c.recipient, c.last_message_id, c.last_at, c.message_count,"
            " c.read_id, m.body, m.reply, m.outcome, m.guard FROM conversations c"
            " LEFT JOIN messages m ON m.id = c.last_message_id"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY c.last_message_id DESC LIMIT :limit"
        )
        return [
            Conversation(
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
            )
            for row in await self._all(sql, **params)
        ]

    async def conversation(self, sender: str) -> Conversation | None:
        await self.refresh()
        rows = await self._all(
            "SELECT c.sender, c.recipient, c.last_message_id, c.last_at, c.message_count,"
            " c.read_id, m.body, m.reply, m.outcome, m.guard FROM conversations c"
            " LEFT JOIN messages m ON m.id = c.last_message_id WHERE c.sender = :sender",
            sender=sender,
        )
        if not rows:
            return None
        row = rows[0]
        return Conversation(
            row[0], row[1], row[2], row[3], row[4], row[2] > row[5], row[6] or "", *row[7:]
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
            "WITH RECURSIVE r(rule) AS (SELECT MIN(rule) FROM messages UNION ALL"
            " SELECT (SELECT MIN(rule) FROM messages WHERE rule > r.rule) FROM r"
            " WHERE r.rule IS NOT NULL) SELECT rule FROM r WHERE rule IS NOT NULL LIMIT 500"
        )
        return [row[0] for row in rows]

    # -- statistics ---------------------------------------------------------------------

    async def stats(
        self, *, days: int = 7, utc_offset: float = 0.0, max_age: float = 30.0
    ) -> Stats:
        """The overview, computed at most once per ``max_age`` seconds per process."""
        now = time.time()
        key = (days, utc_offset)
        cached = self._stats_cache
        if cached is not None and cached[1] == key and now - cached[0] < max_age:
            return cached[2]
        async with self._stats_lock:
            cached = self._stats_cache
            if cached is not None and cached[1] == key and time.time() - cached[0] < max_age:
                return cached[2]
            stats = await self._compute_stats(days, utc_offset)
            self._stats_cache = (time.time(), key, stats)
            return stats

    async def _compute_stats(self, days: int, utc_offset: float) -> Stats:
        """Hours that ended more than two hours ago are read once and kept (per process);
        only the recent hours are read again. A million messages cost one slow first read."""
        started = time.perf_counter()
        now = time.time()
        # Whole hours of the display zone (India is UTC+5:30: its hours start at :30 UTC).
        this_hour = (now + utc_offset) // 3600 * 3600 - utc_offset
        first = this_hour - (days * 24 - 1) * 3600
        hours = [first + 3600 * i for i in range(days * 24)]
        if self._hours_offset != utc_offset:
            self._hours = {}
            self._hours_offset = utc_offset
        settled = this_hour - 2 * 3600  # older hours no longer change (answers take seconds)
        missing = [hour for hour in hours if hour not in self._hours or hour >= settled]
        if missing:
            fresh = await self._read_hours(min(missing), utc_offset)
            for hour in missing:
                self._hours[hour] = fresh.get(hour, _Hour())
        for hour in [hour for hour in self._hours if hour < first]:
            del self._hours[hour]
        per_hour: dict[str, list[int]] = {}
        outcomes: Counter[str] = Counter()
        latency: Counter[int] = Counter()
        handler: Counter[int] = Counter()
        words: Counter[str] = Counter()
        rules: Counter[str] = Counter()
        for index, hour in enumerate(hours):
            data = self._hours[hour]
            for outcome, count in data.outcomes.items():
                per_hour.setdefault(outcome, [0] * len(hours))[index] += count
            outcomes.update(data.outcomes)
            latency.update(data.latency)
            handler.update(data.handler)
            words.update(data.words)
            rules.update(data.rules)
        return Stats(
            since=first,
            hours=hours,
            per_hour=per_hour,
            outcomes=dict(outcomes),
            latency_ms=_histogram_percentiles(latency),
            handler_ms=_histogram_percentiles(handler),
            top_keywords=sorted(words.items(), key=lambda item: (-item[1], item[0]))[:10],
            top_rules=sorted(rules.items(), key=lambda item: (-item[1], item[0]))[:10],
            total=sum(outcomes.values()),
            computed_ms=(time.perf_counter() - started) * 1000,
        )

    async def _read_hours(self, since: float, utc_offset: float) -> dict[float, _Hour]:
        bucket = (
            "CAST(FLOOR((received_at + :offset) / 3600) AS BIGINT)"
            if self.postgres
            else "CAST((received_at + :offset) / 3600 AS INTEGER)"
        )
        word = (
            "upper(split_part(btrim(body), ' ', 1))"
            if self.postgres
            else "upper(CASE WHEN instr(trim(body), ' ') > 0"
            " THEN substr(trim(body), 1, instr(trim(body), ' ') - 1) ELSE trim(body) END)"
        )
        rows = await self._all(
            f"SELECT {bucket}, CASE WHEN state = 'done' THEN outcome ELSE 'pending' END,"
            " (answered_at - received_at) * 1000, handler_ms, rule,"
            f" {word} FROM messages WHERE received_at >= :since",
            since=since,
            offset=utc_offset,
        )
        # Counting a week of messages is CPU work: a thread, so answers keep flowing meanwhile.
        return await asyncio.to_thread(_count_hours, rows, utc_offset)

    async def is_opted_out(self, sender: str, recipient: str) -> bool:
        rows = await self._all(
            "SELECT 1 FROM optouts WHERE sender = :sender AND recipient IN (:recipient, '*')",
            sender=sender,
            recipient=recipient,
        )
        return bool(rows)

    # -- login sessions -----------------------------------------------------------------

    async def reserve_login(
        self, address: str, attempts: int, window: float, *, account: tuple[str, int] | None = None
    ) -> float:
        """Reserve one password check before it is made: 0.0 when reserved, else the seconds
        until one may be. At most ``attempts`` per ``window`` seconds from ``address`` and,
        with ``account=(name, n)``, at most ``n`` against that account from all addresses
        together (guesses spread over many addresses). Counted in the database, so every
        worker and process shares the count, by statements that hold the write lock (SQLite)
        or advisory locks (PostgreSQL) from the count to the insert."""
        now = time.time()
        since = now - window
        keys = [(address[:64], attempts)]
        if account is not None:
            keys.append(("account:" + account[0][:56], account[1]))
        counted = " AND ".join(
            f"(SELECT COUNT(*) FROM login_attempts WHERE address = CAST(:a{i} AS VARCHAR(64))"
            f" AND at > :since) < :n{i}"
            for i in range(len(keys))
        )
        params: dict[str, object] = {"now": now, "since": since}
        for i, (key, limit) in enumerate(keys):
            params[f"a{i}"] = key
            params[f"n{i}"] = limit
        try:
            async with self._login_lock, self.engine.begin() as conn:
                if self.postgres:  # concurrent counts of one key wait for each other
                    for key in sorted(key for key, _ in keys):
                        await conn.execute(
                            text("SELECT pg_advisory_xact_lock(hashtext(:a))"), {"a": key}
                        )
                taken = await conn.execute(
                    text(
                        "INSERT INTO login_attempts (address, at)"
                        " SELECT CAST(:a0 AS VARCHAR(64)), CAST(:now AS DOUBLE PRECISION)"
                        f" WHERE {counted}"
                    ),
                    params,
                )
                if taken.rowcount:
                    for key, _ in keys[1:]:
                        await conn.execute(
                            text("INSERT INTO login_attempts (address, at) VALUES (:a, :now)"),
                            {"a": key, "now": now},
                        )
                    await conn.execute(
                        text("DELETE FROM login_attempts WHERE at <= :since"), {"since": since}
                    )
                    return 0.0
                waits = []
                for key, limit in keys:
                    rows = await conn.execute(
                        text(
                            "SELECT at FROM login_attempts WHERE address = :a AND at > :since"
                            " ORDER BY at DESC LIMIT 1 OFFSET :skip"
                        ),
                        {"a": key, "since": since, "skip": limit - 1},
                    )
                    oldest = rows.scalar()
                    if oldest is not None:  # the attempt whose expiry frees a slot
                        waits.append(float(oldest) + window - now)
        except SQLAlchemyError as error:
            raise StoreUnavailable(str(error.__cause__ or error)) from error
        return max(1.0, max(waits, default=window))

    async def login_succeeded(self, address: str, account: str | None = None) -> None:
        """The password was right: the address's count (and the account's) starts again."""
        await self._write("DELETE FROM login_attempts WHERE address = :a", a=address[:64])
        if account is not None:
            key = "account:" + account[:56]
            await self._write("DELETE FROM login_attempts WHERE address = :a", a=key)

    async def create_session(self, token: str, csrf: str, ttl: float) -> None:
        now = time.time()
        await self._write(
            "DELETE FROM web_sessions WHERE expires_at < :now", now=now
        )  # tidy as we go
        await self._write(
            "INSERT INTO web_sessions (id, csrf, created_at, expires_at)"
            " VALUES (:id, :csrf, :now, :expires)",
            id=_session_id(token),
            csrf=csrf,
            now=now,
            expires=now + ttl,
        )

    async def session_csrf(self, token: str) -> str | None:
        """The CSRF token of a live login session, or ``None``."""
        rows = await self._all(
            "SELECT csrf FROM web_sessions WHERE id = :id AND expires_at > :now",
            id=_session_id(token),
            now=time.time(),
        )
        return str(rows[0][0]) if rows else None

    async def end_session(self, token: str) -> None:
        await self._write("DELETE FROM web_sessions WHERE id = :id", id=_session_id(token))


@dataclass(slots=True)
class _Hour:
    """One hour of the overview: counts, latency histograms, first words and rules."""

    outcomes: Counter[str] = field(default_factory=Counter)
    latency: Counter[int] = field(default_factory=Counter)
    handler: Counter[int] = field(default_factory=Counter)
    words: Counter[str] = field(default_factory=Counter)
    rules: Counter[str] = field(default_factory=Counter)


_STEPS_PER_DOUBLING = 16  # histogram buckets grow by 2^(1/16): about 4% wide


def _count_hours(rows: Sequence[Any], utc_offset: float) -> dict[float, _Hour]:
    found: dict[float, _Hour] = {}
    for bucket_value, outcome, latency, handler_ms, rule, first_word in rows:
        hour = int(bucket_value) * 3600 - utc_offset
        data = found.get(hour)
        if data is None:
            data = found[hour] = _Hour()
        data.outcomes[outcome or "pending"] += 1
        if latency is not None:
            data.latency[_bucket(latency)] += 1
        if handler_ms is not None:
            data.handler[_bucket(handler_ms)] += 1
        if rule is not None:
            data.rules[rule] += 1
        if first_word:
            data.words[first_word[:40]] += 1
    return found


def _bucket(ms: float) -> int:
    return round(math.log2(max(ms, 0.001)) * _STEPS_PER_DOUBLING)


def _histogram_percentiles(histogram: Counter[int]) -> dict[str, float | None]:
    """p50, p90 and p99 from a histogram of :func:`_bucket` values (within about 2%)."""
    total = sum(histogram.values())
    result: dict[str, float | None] = {"p50": None, "p90": None, "p99": None}
    if not total:
        return result
    ordered = sorted(histogram.items())
    for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        rank = q * total
        seen = 0
        for bucket, count in ordered:
            seen += count
            if seen >= rank:
                result[name] = round(2 ** (bucket / _STEPS_PER_DOUBLING), 3)
                break
    return result


def _session_id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


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
