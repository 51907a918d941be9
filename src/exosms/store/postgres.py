"""PostgreSQL store: several exosms processes (and machines) on one database.

The hot path (claim, complete) runs on an asyncpg pool, one short transaction each;
PostgreSQL's own group commit shares WAL flushes among concurrent commits, and a commit
returns only once it is durable (``synchronous_commit`` on, the server default). The SmsSid
claim is decided by the unique key; the reply caps are exact across processes because each
claim takes a transaction-scoped advisory lock on its sender. Everything else uses the
SQLAlchemy reads shared with SQLite.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import create_async_engine

from exosms.guards import ONE_DAY, OPT_IN, OPT_OUT, TEN_MINUTES, GuardQuery, GuardState
from exosms.store.base import (
    Claim,
    ClaimStatus,
    Completion,
    NewMessage,
    StoreUnavailable,
)
from exosms.store.sql import SqlBackedStore, SqlReader
from exosms.store.urls import DatabaseUrl

log = logging.getLogger("exosms.store")

_INSERT = """
INSERT INTO messages (sms_sid, sender, sender_raw, recipient, recipient_raw, body, query,
    date_raw, exotel_date, received_at, method, state, claim_owner, claim_expires,
    fetch_count, last_fetch_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'pending', $12, $13, 1, $10)
ON CONFLICT (sms_sid) DO NOTHING
RETURNING id
"""
_CLAIM_STATE = "SELECT state, reply, claim_expires FROM messages WHERE sms_sid = $1 FOR UPDATE"
_TAKE_OVER = "UPDATE messages SET claim_owner = $1, claim_expires = $2 WHERE sms_sid = $3"
_FETCHED = (
    "UPDATE messages SET fetch_count = fetch_count + 1, last_fetch_at = $1 WHERE sms_sid = $2"
)
_FETCHED_MANY = (
    "UPDATE messages SET fetch_count = fetch_count + $1, last_fetch_at = $2 WHERE sms_sid = $3"
)
FETCH_FLUSH_DELAY = 0.05  # seconds of replays counted together
_COMPLETE = """
UPDATE messages SET state = 'done', reply = $1, rule = $2, outcome = $3, handler_ms = $4,
    error = $5, answered_at = $6, reply_encoding = $7, reply_units = $8, reply_parts = $9,
    dlt_template_id = $10, dlt_reason = $11, guard = $12, claim_owner = NULL,
    claim_expires = NULL
WHERE sms_sid = $13 AND state = 'pending'
RETURNING id
"""
_STORED_REPLY = "SELECT reply FROM messages WHERE sms_sid = $1"
_SAVE_SESSION = """
INSERT INTO sessions (sender, recipient, data, expires_at, updated_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (sender, recipient) DO UPDATE SET
    data = excluded.data, expires_at = excluded.expires_at, updated_at = excluded.updated_at
"""
# Claims need not wait for the disk (see below), and with guards each takes its sender's
# lock, so that reply caps are exact across processes: both in one round trip.
_CLAIM_SETUP_GUARDED = (
    "SELECT set_config('synchronous_commit', 'off', true), pg_advisory_xact_lock(hashtext($1))"
)
_OPT_OUT = """
INSERT INTO optouts (sender, recipient, created_at, source) VALUES ($1, $2, $3, 'sms')
ON CONFLICT (sender, recipient) DO NOTHING
RETURNING sender
"""
_OPT_IN = "DELETE FROM optouts WHERE sender = $1 AND recipient IN ($2, '*') RETURNING sender"
# The sender's standing in one round trip: opted out?, replies in 10 minutes and in a day,
# and whether this text was answered within the loop window (pending claims count too).
_STANDING = """
SELECT EXISTS (SELECT 1 FROM optouts WHERE sender = $1 AND recipient IN ($2, '*')),
       count(*) FILTER (WHERE received_at > $3),
       count(*),
       count(*) FILTER (WHERE received_at > $5 AND body = $6)
FROM messages
WHERE sender = $1 AND received_at > $4 AND sms_sid != $7
  AND (state = 'pending' OR reply IS NOT NULL)
"""
# A claim need not wait for the disk: the answer's commit, which is synchronous, flushes the
# WAL up to and including it. Every answer is durable before it is sent.
_ASYNC_COMMIT = "SET LOCAL synchronous_commit TO OFF"

_UNAVAILABLE = (asyncpg.PostgresError, OSError, asyncpg.InterfaceError, TimeoutError)


async def _guard_state(conn: Any, m: NewMessage, query: GuardQuery) -> GuardState:
    now = m.received_at
    changed = False
    if query.opt_change == OPT_OUT:
        changed = await conn.fetchval(_OPT_OUT, m.sender, m.recipient, now) is not None
    elif query.opt_change == OPT_IN:
        changed = bool(await conn.fetch(_OPT_IN, m.sender, m.recipient))
    loop_since = now - query.loop_window if query.loop_window > 0 else now + 1
    opted_out, recent, day, repeats = await conn.fetchrow(
        _STANDING,
        m.sender,
        m.recipient,
        now - TEN_MINUTES,
        now - ONE_DAY,
        loop_since,
        m.body,
        m.sms_sid,
    )
    return GuardState(bool(opted_out), changed, int(recent), int(day), int(repeats) > 0)


class PostgresStore(SqlBackedStore):
    """Messages in PostgreSQL, safe for many exosms processes at once."""

    def __init__(self, url: DatabaseUrl, *, pool_size: int = 10) -> None:
        self.url = url
        self.pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._reader = SqlReader(
            create_async_engine(url.async_url, pool_size=max(2, pool_size // 2), max_overflow=2)
        )
        self._background: set[asyncio.Task[None]] = set()
        self._fetches: dict[str, tuple[int, float]] = {}

    def _dsn(self) -> str:
        return self.url.async_url.set(drivername="postgresql").render_as_string(hide_password=False)

    async def open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                self._dsn(), min_size=1, max_size=self.pool_size, command_timeout=10
            )
        except _UNAVAILABLE as error:
            raise StoreUnavailable(f"cannot connect to {self.url.redacted()}: {error}") from None

    async def close(self) -> None:
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        await self._reader.engine.dispose()

    def _require_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreUnavailable("the database pool is not open")
        return self._pool

    async def claim(
        self, message: NewMessage, owner: str, expires: float, guard: GuardQuery | None = None
    ) -> Claim:
        m = message
        try:
            async with self._require_pool().acquire() as conn, conn.transaction():
                if guard is not None:
                    await conn.execute(_CLAIM_SETUP_GUARDED, m.sender)
                else:
                    await conn.execute(_ASYNC_COMMIT)
                inserted = await conn.fetchval(_INSERT, *m.row(owner, expires))
                if inserted is not None:
                    state = await _guard_state(conn, m, guard) if guard else None
                    return Claim(ClaimStatus.CLAIMED, guard=state)
                row = await conn.fetchrow(_CLAIM_STATE, m.sms_sid)
                now = time.time()
                if row["state"] == "done":
                    await conn.execute(_FETCHED, now, m.sms_sid)
                    return Claim(ClaimStatus.ANSWERED, reply=row["reply"])
                if row["claim_expires"] is None or row["claim_expires"] < now:
                    # The owner died or hung past the deadline: take the SmsSid over.
                    await conn.execute(_TAKE_OVER, owner, expires, m.sms_sid)
                    state = await _guard_state(conn, m, guard) if guard else None
                    return Claim(ClaimStatus.CLAIMED, guard=state)
                return Claim(ClaimStatus.BUSY, expires=row["claim_expires"])
        except _UNAVAILABLE as error:
            raise StoreUnavailable(f"database write failed: {error}") from None

    async def complete(self, completion: Completion) -> str | None:
        c = completion
        try:
            async with self._require_pool().acquire() as conn, conn.transaction():
                won = await conn.fetchval(_COMPLETE, *c.row())
                if won is not None:
                    if c.session is not None:
                        s = c.session
                        await conn.execute(
                            _SAVE_SESSION, s.sender, s.recipient, s.data, s.expires_at, time.time()
                        )
                    return c.reply
                # Another process completed first: its answer stands for every request.
                stored: str | None = await conn.fetchval(_STORED_REPLY, c.sms_sid)
                return stored
        except _UNAVAILABLE as error:
            raise StoreUnavailable(f"database write failed: {error}") from None

    def record_fetch(self, sms_sid: str, at: float) -> None:
        # Counted in memory and written in one statement shortly after: a replay (Exotel's
        # GET after its HEAD) does not cost a round trip of its own. Telemetry: not awaited.
        if not self._fetches:
            task = asyncio.get_running_loop().create_task(self._flush_fetches())
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        count, _ = self._fetches.get(sms_sid, (0, 0.0))
        self._fetches[sms_sid] = (count + 1, at)

    async def _flush_fetches(self) -> None:
        await asyncio.sleep(FETCH_FLUSH_DELAY)
        pending, self._fetches = self._fetches, {}
        try:
            await self._require_pool().executemany(
                _FETCHED_MANY, [(n, at, sid) for sid, (n, at) in pending.items()]
            )
        except (*_UNAVAILABLE, StoreUnavailable) as error:
            log.warning("could not count %d answer fetches: %s", len(pending), error)
