"""PostgreSQL store: several exosms processes (and machines) on one database.

The hot path (claim, complete) runs on an asyncpg pool, one round trip each for a new SMS
(the claim through the ``exosms_claim_new`` function of migration 0022, the answer and its
queued reply as one statement; retries, takeovers and sessions take a short transaction),
and every commit waits for the disk (``synchronous_commit`` is set ``on`` for our connections,
whatever the server's default): a claim that a crash could lose would let another process
run the handler again, and an answer is sent only once durable. One exception: the claim of
a reply made without user code (a rules file: ``claim_and_complete``) does not wait, since
losing it only means working the answer out again, and the answer's commit, which waits,
makes the claim durable too (the WAL is flushed in order). PostgreSQL's group commit
shares the WAL flushes of concurrent commits. The SmsSid claim is decided by the unique key;
the reply caps are exact across processes because each claim takes a transaction-scoped
advisory lock on its sender. Every call is bounded (connect, acquire and statement
timeouts); a pooled connection that died with the server is replaced and the call tried once
more. A connection goes back to the pool without asyncpg's reset query (a round trip per
call for session state the store never sets). Everything else uses the SQLAlchemy reads
shared with SQLite.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any, TypeVar

import asyncpg
from sqlalchemy.ext.asyncio import create_async_engine

from exosms.guards import ONE_DAY, OPT_IN, OPT_OUT, TEN_MINUTES, GuardQuery, GuardState
from exosms.store import postgres_sql as pg
from exosms.store.base import (
    OWNER_LEASE,
    Claim,
    ClaimLost,
    ClaimStatus,
    Completion,
    Finish,
    NewMessage,
    StoreUnavailable,
)
from exosms.store.errors import describe
from exosms.store.sql import SqlBackedStore, SqlReader
from exosms.store.urls import DatabaseUrl

log = logging.getLogger("exosms.store")

FETCH_FLUSH_DELAY = 0.05  # seconds of replays counted together
_UNAVAILABLE = (asyncpg.PostgresError, OSError, asyncpg.InterfaceError, TimeoutError)
# A pooled connection whose server went away (restart, failover): replace it and try again.
_STALE = (asyncpg.ConnectionDoesNotExistError, asyncpg.InterfaceError, ConnectionError)
T = TypeVar("T")


async def _transaction_state_only(conn: Any) -> None:
    """The pool's reset when a connection comes back: nothing beyond the rollback of an open
    transaction, which asyncpg always does first. Its default reset (``SELECT
    pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL``) is one more round trip per
    call, for session state this store never leaves: its advisory locks are transaction
    scoped, its ``set_config`` is transaction-local, and it neither listens nor opens
    cursors (``tests/store`` checks that a connection comes back as it was made)."""


async def _guard_state(conn: Any, m: NewMessage, query: GuardQuery) -> GuardState:
    now = m.received_at
    changed = False
    if query.opt_change == OPT_OUT:
        changed = await conn.fetchval(pg.ADD_OPT_OUT, m.sender, m.recipient, now) is not None
    elif query.opt_change == OPT_IN:
        changed = bool(await conn.fetch(pg.DROP_OPT_OUT, m.sender, m.recipient))
    loop_since = now - query.loop_window if query.loop_window > 0 else now + 1
    opted_out, recent, day, repeats = await conn.fetchrow(
        pg.STANDING,
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
    """Messages in PostgreSQL, safe for many exosms processes at once.

    ``timeout`` bounds every hot-path call: connecting, waiting for a pooled connection, and
    each statement (a frozen server must not hold a request past Exotel's patience).
    """

    def __init__(self, url: DatabaseUrl, *, pool_size: int = 10, timeout: float = 5.0) -> None:
        self.url = url
        self.pool_size = pool_size
        self.timeout = timeout
        self._pool: asyncpg.Pool | None = None
        self._reader = SqlReader(
            create_async_engine(
                url.async_url,
                pool_size=max(2, pool_size // 2),
                max_overflow=2,
                pool_pre_ping=True,  # a connection that died with the server is replaced
                connect_args={"timeout": timeout, "command_timeout": timeout},
            )
        )
        self._background: set[asyncio.Task[None]] = set()
        self._fetches: dict[str, tuple[int, float]] = {}

    def _dsn(self) -> str:
        return self.url.async_url.set(drivername="postgresql").render_as_string(hide_password=False)

    async def open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                self._dsn(),
                min_size=1,
                max_size=self.pool_size,
                timeout=self.timeout,  # connecting
                command_timeout=self.timeout,  # each statement
                server_settings={"synchronous_commit": "on"},
                reset=_transaction_state_only,
            )
        except _UNAVAILABLE as error:
            raise StoreUnavailable(
                f"cannot connect to {self.url.redacted()}: {describe(error)}"
            ) from None

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

    async def _transaction(
        self, work: Callable[[Any], Awaitable[T]], *, transaction: bool = True
    ) -> T:
        """Run ``work(conn)`` in one transaction (``transaction=False``: a single statement,
        its own transaction, one round trip); a stale pooled connection is replaced and the
        work tried once more (every hot-path write here is safe to repeat)."""
        pool = self._require_pool()
        for attempt in (1, 2):
            try:
                async with pool.acquire(timeout=self.timeout) as conn:
                    if not transaction:
                        return await work(conn)
                    async with conn.transaction():
                        return await work(conn)
            except _STALE as error:
                if attempt == 2:
                    raise StoreUnavailable(f"database connection lost: {describe(error)}") from None
                pool.expire_connections()  # the others died with it: replace them all
                log.info("database connection was closed; trying a fresh one")
            except _UNAVAILABLE as error:
                raise StoreUnavailable(f"database write failed: {describe(error)}") from None
        raise AssertionError("unreachable")

    async def claim_and_complete(
        self,
        message: NewMessage,
        owner: str,
        expires: float,
        guard: GuardQuery | None,
        finish: Finish,
    ) -> tuple[Claim, Completion | None]:
        # Two round trips, as for a handler's answer (the claim, then the answer), but one
        # wait for the disk: with no user code between them, a claim lost in a crash only
        # means the answer is worked out again, and the answer's commit, which waits, makes
        # the claim's durable too (the WAL is flushed in order).
        claim = await self._claim(message, owner, expires, guard, flushed=False)
        if claim.status is not ClaimStatus.CLAIMED:
            return claim, None
        completion = finish(claim.guard)
        stored = await self.complete(completion)
        return replace(claim, reply=stored), completion

    async def claim(
        self, message: NewMessage, owner: str, expires: float, guard: GuardQuery | None = None
    ) -> Claim:
        return await self._claim(message, owner, expires, guard, flushed=True)

    async def _claim(
        self,
        message: NewMessage,
        owner: str,
        expires: float,
        guard: GuardQuery | None,
        *,
        flushed: bool,
    ) -> Claim:
        m = message
        if guard is None or guard.opt_change is None:
            claimed = await self._claim_new(m, owner, expires, guard, flushed=flushed)
            if claimed is not None:
                return claimed

        async def work(conn: Any) -> Claim:
            if guard is not None:
                await conn.execute(pg.CLAIM_LOCK, m.sender)
            inserted = await conn.fetchval(pg.INSERT, *m.row(owner, expires))
            if inserted is not None:
                state = await _guard_state(conn, m, guard) if guard else None
                return Claim(ClaimStatus.CLAIMED, guard=state)
            state_, reply, holder, holder_expires, lease, db_started = await conn.fetchrow(
                pg.CLAIM_STATE, m.sms_sid
            )
            now = time.time()
            if state_ == "done":
                await conn.execute(pg.FETCHED, now, m.sms_sid)
                return Claim(ClaimStatus.ANSWERED, reply=reply)
            if holder is None or holder == owner:
                # Released, or ours with nobody in this process working on it: the handler
                # has not run to an answer, so it may run now.
                await conn.execute(pg.RETAKE, owner, expires, m.sms_sid)
                state = await _guard_state(conn, m, guard) if guard else None
                return Claim(ClaimStatus.CLAIMED, guard=state)
            owner_gone = (lease is None or lease < now) and float(db_started) < now - OWNER_LEASE
            if (holder_expires is None or holder_expires < now) and owner_gone:
                # Its owner stopped renewing its lease (killed, or cut off from the database
                # that long): the one case where a handler may run a second time.
                await conn.execute(pg.TAKE_OVER, owner, expires, m.sms_sid)
                state = await _guard_state(conn, m, guard) if guard else None
                return Claim(ClaimStatus.CLAIMED, guard=state, taken_over=True)
            return Claim(ClaimStatus.BUSY, expires=max(holder_expires or now, now))

        return await self._transaction(work)

    async def _claim_new(
        self,
        m: NewMessage,
        owner: str,
        expires: float,
        guard: GuardQuery | None,
        *,
        flushed: bool,
    ) -> Claim | None:
        """The claim of an SmsSid not stored yet, in one round trip; ``None`` when it was
        stored already (the full claim decides then). Unless ``flushed``, its commit does not
        wait for the disk."""
        now = m.received_at
        loop_since = now + 1
        if guard is not None and guard.loop_window > 0:
            loop_since = now - guard.loop_window
        values = (*m.row(owner, expires), guard is not None, now - TEN_MINUTES, now - ONE_DAY)

        async def work(conn: Any) -> Any:
            return await conn.fetchrow(
                pg.CLAIM_NEW if flushed else pg.CLAIM_NEW_UNFLUSHED, *values, loop_since
            )

        row = await self._transaction(work, transaction=False)
        if row is None or row[0] is None:
            return None
        if guard is None:
            return Claim(ClaimStatus.CLAIMED)
        _, opted_out, recent, day, repeats = row
        state = GuardState(bool(opted_out), False, int(recent), int(day), int(repeats) > 0)
        return Claim(ClaimStatus.CLAIMED, guard=state)

    async def complete(self, completion: Completion) -> str | None:
        c = completion

        async def work(conn: Any) -> tuple[bool, str | None]:
            if c.session is None and c.outbox is not None:  # the answer and its queued reply
                queued = c.outbox.row(c.sms_sid, time.time())
                won = await conn.fetchval(pg.COMPLETE_AND_QUEUE, *c.row(), *queued)
            else:
                won = await conn.fetchval(pg.COMPLETE, *c.row())
                if won is not None and c.session is not None:
                    s = c.session
                    await conn.execute(
                        pg.SAVE_SESSION, s.sender, s.recipient, s.data, s.expires_at, time.time()
                    )
                    if c.outbox is not None:
                        await conn.execute(pg.QUEUE, *c.outbox.row(c.sms_sid, time.time()))
            if won is not None:
                return True, c.reply
            row = await conn.fetchrow(pg.STORED_ANSWER, c.sms_sid)
            if row is None or row["state"] != "done":
                return False, None
            # Another process completed first: its answer stands for every request.
            stored: str | None = row["reply"]
            return True, stored

        # Without a session to save the answer is one statement, its own transaction.
        found, reply = await self._transaction(work, transaction=c.session is not None)
        if not found:
            raise ClaimLost(c.sms_sid)
        return reply

    async def release(self, sms_sids: Sequence[str], owner: str) -> None:
        async def work(conn: Any) -> None:
            await conn.execute(pg.RELEASE, list(sms_sids), owner)

        await self._transaction(work)

    async def renew_lease(self, owner: str, until: float) -> None:
        async def work(conn: Any) -> None:
            await conn.execute(pg.RENEW, owner, until, time.time())

        await self._transaction(work)

    async def drop_lease(self, owner: str) -> None:
        async def work(conn: Any) -> None:
            await conn.execute(pg.DROP_LEASE, owner)

        await self._transaction(work)

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
                pg.FETCHED_MANY, [(n, at, sid) for sid, (n, at) in pending.items()]
            )
        except (*_UNAVAILABLE, StoreUnavailable) as error:
            log.warning("could not count %d answer fetches: %s", len(pending), error)
