"""SQLite store: the embedded default.

Writes go through one writer thread that owns one connection in WAL mode with
``synchronous=FULL``. The thread takes every write waiting in its queue, runs them in one
transaction and commits once: many requests share one fsync (group commit), and each write
is durable before its future resolves. Reads use SQLAlchemy over aiosqlite, concurrently
with the writer (WAL readers never block the writer).

Why one module (about 500 lines): the writer thread, its group commit and the statements it
runs (claims, answers, guard counts) are one unit: the durability of every answer depends
on all three, and the fault suite tests them as one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from queue import Empty, SimpleQueue
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import create_async_engine

from exosms.guards import ONE_DAY, OPT_IN, OPT_OUT, TEN_MINUTES, GuardQuery, GuardState
from exosms.store.base import (
    Claim,
    ClaimLost,
    ClaimStatus,
    Completion,
    Finish,
    NewMessage,
    StoreUnavailable,
)
from exosms.store.events import EventStore
from exosms.store.inbox import InboxQueries
from exosms.store.schema import insert_pending
from exosms.store.sql import SqlBackedStore, SqlReader
from exosms.store.sqlite_events import SqliteEventStore
from exosms.store.sqlite_outbox import SqliteOutbox
from exosms.store.urls import DatabaseUrl

log = logging.getLogger("exosms.store")

MAX_BATCH = 512  # writes per transaction; bounds how long one commit holds the lock
BUSY_TIMEOUT_MS = 10_000  # another process (serve --workers) may hold the write lock

_INSERT = insert_pending(lambda i: f"?{i}")
_CLAIM_STATE = (
    "SELECT state, reply, claim_owner, claim_expires,"
    " (SELECT lease_until FROM claim_owners WHERE owner = messages.claim_owner)"
    " FROM messages WHERE sms_sid = ?"
)
_RETAKE = "UPDATE messages SET claim_owner = ?, claim_expires = ? WHERE sms_sid = ?"
_TAKE_OVER = (
    "UPDATE messages SET claim_owner = ?, claim_expires = ?, takeovers = takeovers + 1"
    " WHERE sms_sid = ?"
)
_RELEASE = (
    "UPDATE messages SET claim_owner = NULL, claim_expires = 0"
    " WHERE sms_sid = ? AND claim_owner = ? AND state = 'pending'"
)
_RENEW = (
    "INSERT INTO claim_owners (owner, lease_until, started_at) VALUES (?, ?, ?)"
    " ON CONFLICT (owner) DO UPDATE SET lease_until = excluded.lease_until"
)
_DROP_LEASE = "DELETE FROM claim_owners WHERE owner = ?"
_COMPLETE = (
    "UPDATE messages SET state = 'done', reply = ?, rule = ?, outcome = ?, handler_ms = ?,"
    " error = ?, answered_at = ?, reply_encoding = ?, reply_units = ?, reply_parts = ?,"
    " dlt_template_id = ?, dlt_reason = ?, guard = ?, refused_reply = ?, claim_owner = NULL,"
    " claim_expires = NULL WHERE sms_sid = ? AND state = 'pending'"
)
_STORED_ANSWER = "SELECT state, reply FROM messages WHERE sms_sid = ?"
_QUEUE = (
    "INSERT INTO outbox (message_sid, to_number, sender, body, template_id, status, attempts,"
    " next_attempt_at, created_at, parts) VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?)"
    " ON CONFLICT (message_sid) DO NOTHING"
)
_SAVE_SESSION = (
    "INSERT INTO sessions (sender, recipient, data, expires_at, updated_at)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (sender, recipient) DO UPDATE SET"
    " data = excluded.data, expires_at = excluded.expires_at, updated_at = excluded.updated_at"
)
_FETCHED = "UPDATE messages SET fetch_count = fetch_count + 1, last_fetch_at = ? WHERE sms_sid = ?"


def configure_connection(conn: Any) -> None:
    """Pragmas every exosms SQLite connection uses: WAL, full sync, wait for locks."""
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys=ON")


_OPT_OUT = (
    "INSERT INTO optouts (sender, recipient, created_at, source) VALUES (?, ?, ?, 'sms')"
    " ON CONFLICT (sender, recipient) DO NOTHING"
)
_OPT_IN = "DELETE FROM optouts WHERE sender = ? AND recipient IN (?, '*')"
# The sender's standing in one statement: opted out?, replies in 10 minutes and in a day,
# and whether this text was answered within the loop window. Replies being worked out
# (pending claims) count too: they may yet reply.
_STANDING = (
    "SELECT EXISTS (SELECT 1 FROM optouts WHERE sender = :sender AND recipient IN (:to, '*')),"
    " COALESCE(SUM(received_at > :ten_min), 0), COUNT(*),"
    " COALESCE(SUM(received_at > :loop AND body = :body), 0)"
    " FROM messages WHERE sender = :sender AND received_at > :day AND sms_sid != :sid"
    " AND (state = 'pending' OR reply IS NOT NULL)"
)


def _guard_state(conn: sqlite3.Connection, m: NewMessage, query: GuardQuery) -> GuardState:
    now = m.received_at
    changed = False
    if query.opt_change == OPT_OUT:
        changed = conn.execute(_OPT_OUT, (m.sender, m.recipient, now)).rowcount == 1
    elif query.opt_change == OPT_IN:
        changed = conn.execute(_OPT_IN, (m.sender, m.recipient)).rowcount > 0
    opted_out, recent, day, repeats = conn.execute(
        _STANDING,
        {
            "sender": m.sender,
            "to": m.recipient,
            "ten_min": now - TEN_MINUTES,
            "day": now - ONE_DAY,
            # the loop window reaches back at most a day: that is what is read here
            "loop": now - query.loop_window if query.loop_window > 0 else now + 1,
            "body": m.body,
            "sid": m.sms_sid,
        },
    ).fetchone()
    return GuardState(bool(opted_out), changed, int(recent), int(day), int(repeats) > 0)


def _claim(
    conn: sqlite3.Connection,
    m: NewMessage,
    owner: str,
    expires: float,
    guard: GuardQuery | None,
) -> Claim:
    inserted = conn.execute(_INSERT, m.row(owner, expires))
    if inserted.rowcount == 1:
        return Claim(ClaimStatus.CLAIMED, guard=_guard_state(conn, m, guard) if guard else None)
    state, reply, holder, holder_expires, lease = conn.execute(
        _CLAIM_STATE, (m.sms_sid,)
    ).fetchone()
    now = time.time()
    if state == "done":
        conn.execute(_FETCHED, (now, m.sms_sid))
        return Claim(ClaimStatus.ANSWERED, reply=reply)
    if holder is None or holder == owner:
        # Released, or ours with nobody in this process working on it: the handler has not
        # run to an answer, so it may run now.
        conn.execute(_RETAKE, (owner, expires, m.sms_sid))
        return Claim(ClaimStatus.CLAIMED, guard=_guard_state(conn, m, guard) if guard else None)
    if (holder_expires is None or holder_expires < now) and (lease is None or lease < now):
        # Its owner stopped renewing its lease (the process died or hangs): the one case
        # where a handler may run a second time.
        conn.execute(_TAKE_OVER, (owner, expires, m.sms_sid))
        state_now = _guard_state(conn, m, guard) if guard else None
        return Claim(ClaimStatus.CLAIMED, guard=state_now, taken_over=True)
    return Claim(ClaimStatus.BUSY, expires=max(holder_expires or now, now))


def _complete(conn: sqlite3.Connection, c: Completion) -> tuple[bool, str | None]:
    """(found, the stored reply): found is False when no message row is there to complete."""
    updated = conn.execute(_COMPLETE, c.row())
    if updated.rowcount == 1:
        if c.session is not None:
            s = c.session
            conn.execute(_SAVE_SESSION, (s.sender, s.recipient, s.data, s.expires_at, time.time()))
        if c.outbox is not None:
            conn.execute(_QUEUE, c.outbox.row(c.sms_sid, time.time()))
        return True, c.reply
    row = conn.execute(_STORED_ANSWER, (c.sms_sid,)).fetchone()
    if row is None or row[0] != "done":
        return False, None
    # Another process completed first (after taking over a claim): its answer stands, so
    # that every request for this SmsSid gets the same bytes.
    stored: str | None = row[1]
    return True, stored


def _complete_or_lost(conn: sqlite3.Connection, c: Completion) -> str | ClaimLost | None:
    """:func:`_complete`; no row to complete comes back as :class:`ClaimLost`, raised by the
    write's future."""
    found, reply = _complete(conn, c)
    return reply if found else ClaimLost(c.sms_sid)


def _claim_and_complete(
    conn: sqlite3.Connection,
    m: NewMessage,
    owner: str,
    expires: float,
    guard: GuardQuery | None,
    finish: Finish,
) -> tuple[Claim, Completion | None] | BaseException:
    claim = _claim(conn, m, owner, expires, guard)
    if claim.status is not ClaimStatus.CLAIMED:
        return claim, None
    try:
        completion = finish(claim.guard)
    except Exception as error:  # a fault in working it out is not the batch's
        return error
    found, reply = _complete(conn, completion)
    assert found, "the row claimed in this transaction is there to complete"
    return replace(claim, reply=reply), completion


def _release(conn: sqlite3.Connection, sms_sids: list[str], owner: str) -> None:
    conn.executemany(_RELEASE, [(sid, owner) for sid in sms_sids])


def _renew(conn: sqlite3.Connection, owner: str, until: float) -> None:
    conn.execute(_RENEW, (owner, until, time.time()))


_FETCHED_MANY = (
    "UPDATE messages SET fetch_count = fetch_count + ?, last_fetch_at = ? WHERE sms_sid = ?"
)


INDEX_BATCH = 1000  # messages per indexing step: a few milliseconds of the writer's time
INDEX_INTERVAL = 0.05  # seconds between steps: small steps keep the tail of answer times short
_UPSERT_CONVERSATION = (
    "INSERT INTO conversations (sender, recipient, last_message_id, last_at, message_count,"
    " read_id) VALUES (?, ?, ?, ?, ?, 0) ON CONFLICT (sender) DO UPDATE SET"
    " recipient = excluded.recipient, last_message_id = excluded.last_message_id,"
    " last_at = excluded.last_at,"
    " message_count = conversations.message_count + excluded.message_count"
)


def index_inbox(conn: sqlite3.Connection, limit: int = INDEX_BATCH) -> int:
    """Add the messages stored since the last call to full-text search and to conversations.

    Runs inside the writer's transaction (so two processes never index the same rows).
    Returns how many messages it added: fewer than ``limit`` means it has caught up.
    """
    mark = conn.execute("SELECT id FROM inbox_indexed").fetchone()[0]
    rows = conn.execute(
        "SELECT id, sender, recipient, received_at, body FROM messages WHERE id > ?"
        " ORDER BY id LIMIT ?",
        (mark, limit),
    ).fetchall()
    if not rows:
        return 0
    conn.executemany(
        "INSERT INTO messages_fts (rowid, body) VALUES (?, ?)", [(r[0], r[4]) for r in rows]
    )
    latest: dict[str, list[Any]] = {}
    for message_id, sender, recipient, received_at, _ in rows:
        entry = latest.get(sender)
        if entry is None:
            latest[sender] = [recipient, message_id, received_at, 1]
        else:
            entry[0:3] = [recipient, message_id, received_at]
            entry[3] += 1
    conn.executemany(
        _UPSERT_CONVERSATION,
        [(sender, *entry) for sender, entry in latest.items()],
    )
    conn.execute("UPDATE inbox_indexed SET id = ?", (rows[-1][0],))
    return len(rows)


def _index_all(conn: sqlite3.Connection) -> int:
    total = 0
    for _ in range(20):  # at most 20,000 rows per call: the rest at the next one
        added = index_inbox(conn)
        total += added
        if added < INDEX_BATCH:
            break
    return total


@dataclass(slots=True)
class _Write:
    work: Callable[..., Any]
    args: tuple[Any, ...]
    future: asyncio.Future[Any] | None
    loop: asyncio.AbstractEventLoop | None
    durable: bool = True


class GroupCommitWriter:
    """One thread, one connection, one transaction (and one fsync) per batch of writes."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._queue: SimpleQueue[list[_Write] | None] = SimpleQueue()
        # Writes submitted in one turn of an event loop, handed over together at its end.
        self._pending: dict[asyncio.AbstractEventLoop, list[_Write]] = {}
        self._lock = threading.Lock()  # a hand-over against the writer's last look
        self._closed = False
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self.batches = 0
        self.writes = 0
        self._durable = True  # synchronous=FULL, as configure_connection sets it

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="exosms-sqlite-writer", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            raise StoreUnavailable(f"cannot open {self._path}: {self._startup_error}")

    def stop(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def submit(
        self, work: Callable[..., Any], *args: Any, durable: bool = True
    ) -> asyncio.Future[Any]:
        if self._thread is None or not self._thread.is_alive():
            raise StoreUnavailable("the database writer is not running")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._add(loop, _Write(work, args, future, loop, durable))
        return future

    def post(self, work: Callable[..., Any], *args: Any) -> None:
        """A write nobody waits for (the indexer, fetch counts), handed over at once: one
        posted just before :meth:`stop` still lands."""
        self._queue.put([_Write(work, args, None, None, durable=False)])

    def _add(self, loop: asyncio.AbstractEventLoop, write: _Write) -> None:
        # One hand-over to the writer per turn of the loop, not one per write: each woke the
        # writer thread and passed it the GIL, and it took a batch of one.
        pending = self._pending.get(loop)
        if pending is None:
            pending = self._pending[loop] = []
            loop.call_soon(self._hand_over, loop)
        pending.append(write)

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        writes = self._pending.pop(loop)
        with self._lock:
            if not self._closed:
                self._queue.put(writes)
                return
        self._deliver(writes, [StoreUnavailable("the database writer stopped")] * len(writes))

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            configure_connection(conn)
        except sqlite3.Error as error:
            self._startup_error = error
            self._ready.set()
            return
        self._ready.set()
        stopping = False
        batch: list[_Write] = []
        while batch or not stopping:
            if not batch:
                first = self._queue.get()
                if first is None:
                    break
                batch = first
            while not stopping and len(batch) < MAX_BATCH:
                try:
                    more = self._queue.get_nowait()
                except Empty:
                    break
                if more is None:
                    stopping = True
                    break
                batch.extend(more)
            batch, rest = batch[:MAX_BATCH], batch[MAX_BATCH:]
            self._deliver(batch, self._run_batch(conn, batch))
            batch = rest
        conn.close()
        with self._lock:
            self._closed = True
        left = [*batch]
        with contextlib.suppress(Empty):
            while True:
                more = self._queue.get_nowait()
                left.extend(more or [])
        self._deliver(left, [StoreUnavailable("the database writer stopped")] * len(left))

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Write]) -> list[Any]:
        self.batches += 1
        self.writes += len(batch)
        durable = any(write.durable for write in batch)
        try:
            if durable != self._durable:
                # A batch with no answer in it (claims, fetch counts) is committed without
                # waiting for the disk; the next answer's fsync makes it durable too, since
                # the WAL is written in order. Every answer is fsynced before it is sent.
                conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
                self._durable = durable
            conn.execute("BEGIN IMMEDIATE")
            results = [write.work(conn, *write.args) for write in batch]
            conn.execute("COMMIT")
            return results
        except Exception as error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if len(batch) == 1:
                log.error("database write failed: %s", error)
                return [StoreUnavailable(f"database write failed: {error}")]
        # One write spoiled the batch: run each alone so the others still land.
        return [self._run_batch(conn, [write])[0] for write in batch]

    @staticmethod
    def _deliver(batch: list[_Write], results: list[Any]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any]]] = {}
        for write, result in zip(batch, results, strict=True):
            if write.future is not None and write.loop is not None:
                by_loop.setdefault(write.loop, []).append((write.future, result))
        for loop, pairs in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the loop closed while writing
                loop.call_soon_threadsafe(_resolve, pairs)


def _resolve(pairs: list[tuple[asyncio.Future[Any], Any]]) -> None:
    for future, result in pairs:
        if future.done():
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)


class SqliteStore(SqlBackedStore):
    """The embedded store: one SQLite file, durable group-committed writes."""

    def __init__(self, url: DatabaseUrl, *, indexing: bool = True) -> None:
        """``indexing``: keep search and conversations up to date in the background (a
        process that only forwards events leaves that to the server, and does not take the
        write lock for it)."""
        assert url.sqlite_path is not None
        self._indexing = indexing
        self.url = url
        self.path = url.sqlite_path
        self._writer = GroupCommitWriter(str(self.path))
        self._fetches: dict[str, tuple[int, float]] = {}
        self._indexer: asyncio.Task[None] | None = None
        engine = create_async_engine(url.async_url)
        event.listen(engine.sync_engine, "connect", lambda conn, _: configure_connection(conn))
        self._reader = SqlReader(engine)

    async def open(self) -> None:
        await asyncio.to_thread(self._writer.start)
        if self._indexing:
            self._indexer = asyncio.create_task(self._index_forever())

    async def close(self) -> None:
        if self._indexer is not None:
            self._indexer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._indexer
            self._indexer = None
        if self._fetches:
            self._writer.post(self._flush_fetches)  # written before the writer stops
        await asyncio.to_thread(self._writer.stop)
        await self._reader.engine.dispose()

    @property
    def inbox(self) -> InboxQueries:
        if self._inbox is None:
            self._inbox = InboxQueries(self._reader.engine, refresh=self.index_now)
        return self._inbox

    @property
    def outbox(self) -> SqliteOutbox:  # its writes go through the writer thread
        return SqliteOutbox(self._reader.engine, self._writer.submit)

    @property
    def events(self) -> EventStore:
        if self._events is None:  # its writes go through the writer thread
            self._events = SqliteEventStore(self._reader.engine, self._writer.submit)
        return self._events

    async def index_now(self) -> None:
        """Bring search and conversations up to date before the inbox reads them."""
        await self._writer.submit(_index_all, durable=False)

    async def _index_forever(self) -> None:
        # New messages reach search and conversations within INDEX_INTERVAL, in batches
        # that ride along with the writer's other work: no per-message cost on the hot path.
        while True:
            await asyncio.sleep(INDEX_INTERVAL)
            if self._fetches:  # the replays counted meanwhile, in the same batch
                self._writer.post(self._flush_fetches)
            self._writer.post(index_inbox)

    # The hot path's three writes return the writer's own future (no coroutine around it),
    # so that the engine bounds each with a timer instead of a task: about 5 us each.

    def claim(
        self, message: NewMessage, owner: str, expires: float, guard: GuardQuery | None = None
    ) -> asyncio.Future[Claim]:
        return self._writer.submit(_claim, message, owner, expires, guard, durable=False)

    def claim_and_complete(
        self,
        message: NewMessage,
        owner: str,
        expires: float,
        guard: GuardQuery | None,
        finish: Finish,
    ) -> asyncio.Future[tuple[Claim, Completion | None]]:
        # One write: the message, its claim, the guards' counts and the answer commit
        # together, with one fsync, and one crossing to the writer thread and back.
        # An exception finish raised comes back as the write's result, and is raised.
        return self._writer.submit(_claim_and_complete, message, owner, expires, guard, finish)

    def complete(self, completion: Completion) -> asyncio.Future[str | None]:
        return self._writer.submit(_complete_or_lost, completion)

    async def release(self, sms_sids: Sequence[str], owner: str) -> None:
        await self._writer.submit(_release, list(sms_sids), owner, durable=False)

    async def renew_lease(self, owner: str, until: float) -> None:
        await self._writer.submit(_renew, owner, until, durable=False)

    async def drop_lease(self, owner: str) -> None:
        await self._writer.submit(lambda conn: conn.execute(_DROP_LEASE, (owner,)), durable=False)

    def record_fetch(self, sms_sid: str, at: float) -> None:
        # Counted in memory and written with the indexer's next step (within INDEX_INTERVAL):
        # a replay (Exotel's GET after its HEAD) costs no write, nor a batch, of its own.
        # Telemetry, so not awaited.
        if not self._fetches and self._indexer is None:
            self._writer.post(self._flush_fetches)
        count, _ = self._fetches.get(sms_sid, (0, 0.0))
        self._fetches[sms_sid] = (count + 1, at)

    def _flush_fetches(self, conn: sqlite3.Connection) -> None:
        pending, self._fetches = self._fetches, {}
        conn.executemany(_FETCHED_MANY, [(n, at, sid) for sid, (n, at) in pending.items()])
