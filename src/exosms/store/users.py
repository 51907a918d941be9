"""The inbox's people: named users with a role, each with their own password hash.

``admin`` is the first admin, whose password is ``[inbox] password_hash`` (``exosms
password``): it is not in this table. Everyone else is (``exosms users``, the users page).
An admin manages templates, opt-outs and users; an agent reads, replies and assigns.
Removing a user, or changing their password, ends their sessions.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from exosms.store.textsql import execute, fetch_all

ADMIN, AGENT = "admin", "agent"
ROLES = (ADMIN, AGENT)
FIRST_ADMIN = "admin"  # the account of [inbox] password_hash
_NAME = re.compile(r"^[a-z][a-z0-9._-]{1,31}$")


class UserError(ValueError):
    """A user that cannot be added or changed; the message says why, in one line."""


def user_name(value: str) -> str:
    """A login name in its stored form (lower case); :class:`UserError` for a bad one."""
    name = value.strip().lower()
    if not _NAME.match(name):
        raise UserError(
            f"{value!r} is not a user name: 2 to 32 characters, a letter first, then letters,"
            " digits, '.', '_' or '-'"
        )
    return name


@dataclass(frozen=True, slots=True)
class User:
    """One person who logs in to the inbox."""

    name: str
    role: str
    created_at: float

    @property
    def is_admin(self) -> bool:
        """Whether they may manage templates, opt-outs and users."""
        return self.role == ADMIN


class Users:
    """The users table, over the store's async SQLAlchemy engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        """Over the store's engine (the users are few: no writer thread needed)."""
        self.engine = engine

    async def all(self) -> list[User]:
        """Every user but the first admin, by name."""
        rows = await fetch_all(
            self.engine, "SELECT name, role, created_at FROM users ORDER BY name"
        )
        return [User(*row) for row in rows]

    async def password_hash(self, name: str) -> tuple[str, str] | None:
        """``(role, hash)`` of ``name``, or ``None`` when there is no such user."""
        rows = await fetch_all(
            self.engine, "SELECT role, password_hash FROM users WHERE name = :name", name=name
        )
        return (str(rows[0][0]), str(rows[0][1])) if rows else None

    async def add(self, name: str, role: str, hashed: str) -> None:
        """A new user; :class:`UserError` when the name is taken or the role unknown."""
        if role not in ROLES:
            raise UserError(f"role: {ADMIN} or {AGENT}, not {role!r}")
        if name == FIRST_ADMIN:
            raise UserError(
                f"{FIRST_ADMIN!r} is the first admin, set with `exosms password`: choose"
                " another name"
            )
        if await self.password_hash(name) is not None:
            raise UserError(f"there is already a user {name!r}")
        await execute(
            self.engine,
            "INSERT INTO users (name, role, password_hash, created_at) VALUES"
            " (:name, :role, :hash, :now)",
            name=name,
            role=role,
            hash=hashed,
            now=time.time(),
        )

    async def set_password(self, name: str, hashed: str) -> bool:
        """A new password for ``name`` (their sessions end); False if there is no such user."""
        changed = await execute(
            self.engine,
            "UPDATE users SET password_hash = :hash WHERE name = :name",
            name=name,
            hash=hashed,
        )
        if changed:
            await self.end_sessions(name)
        return bool(changed)

    async def remove(self, name: str) -> bool:
        """Remove ``name`` and end their sessions; False if there is no such user."""
        removed = await execute(self.engine, "DELETE FROM users WHERE name = :name", name=name)
        await self.end_sessions(name)
        return bool(removed)

    async def end_sessions(self, name: str) -> None:
        """Log ``name`` out everywhere."""
        await execute(self.engine, "DELETE FROM web_sessions WHERE user_name = :name", name=name)
