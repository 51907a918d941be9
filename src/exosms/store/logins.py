"""Inbox logins: password attempts counted per address and per account, and login sessions.

Counted and kept in the database, so that every worker and process shares them. A session
is stored by the SHA-256 of its token (the cookie holds the token itself).
"""

from __future__ import annotations

import asyncio
import hashlib
import time

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from exosms.store.errors import sql_errors
from exosms.store.textsql import execute, fetch_all


class Logins:
    """Login attempts and sessions, over the store's async SQLAlchemy engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"
        self._login_lock = asyncio.Lock()  # one reservation at a time in this process

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
        with sql_errors():
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
        return max(1.0, max(waits, default=window))

    async def login_succeeded(self, address: str, account: str | None = None) -> None:
        """The password was right: the address's count (and the account's) starts again."""
        await execute(self.engine, "DELETE FROM login_attempts WHERE address = :a", a=address[:64])
        if account is not None:
            key = "account:" + account[:56]
            await execute(self.engine, "DELETE FROM login_attempts WHERE address = :a", a=key)

    async def create_session(
        self, token: str, csrf: str, ttl: float, user: str | None = None
    ) -> None:
        """A new login session; ``user``: who (``None``: the first admin)."""
        now = time.time()
        await execute(
            self.engine, "DELETE FROM web_sessions WHERE expires_at < :now", now=now
        )  # tidy as we go
        await execute(
            self.engine,
            "INSERT INTO web_sessions (id, csrf, created_at, expires_at, user_name)"
            " VALUES (:id, :csrf, :now, :expires, :user)",
            id=_session_id(token),
            csrf=csrf,
            now=now,
            expires=now + ttl,
            user=user,
        )

    async def session(self, token: str) -> tuple[str, str | None, str] | None:
        """``(csrf, user, role)`` of a live login session (``user`` ``None`` and role admin:
        the first admin), or ``None``; a session of a user since removed is not live."""
        rows = await fetch_all(
            self.engine,
            "SELECT s.csrf, s.user_name, u.role FROM web_sessions s"
            " LEFT JOIN users u ON u.name = s.user_name"
            " WHERE s.id = :id AND s.expires_at > :now",
            id=_session_id(token),
            now=time.time(),
        )
        if not rows:
            return None
        csrf, user, role = rows[0]
        if user is None:
            return str(csrf), None, "admin"
        return (str(csrf), str(user), str(role)) if role is not None else None

    async def end_session(self, token: str) -> None:
        await execute(self.engine, "DELETE FROM web_sessions WHERE id = :id", id=_session_id(token))


def _session_id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
