"""Backups of the embedded database: SQLite's online backup, taken while the server answers,
checked with ``integrity_check`` before it is kept; and the way back.

A backup is written to a temporary file beside the target and renamed into place only once
it checks out, so a half-written or damaged copy never takes a good file's name. PostgreSQL
is backed up with its own tools (``pg_dump``; docs/deploying.md).
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from exosms.store.sqlite import BUSY_TIMEOUT_MS

PAGES_PER_STEP = 1024  # the writer waits at most one step's copy for the lock (4 MiB)


class BackupError(RuntimeError):
    """A backup or a restore that cannot be made; the message says why, in one line."""


@dataclass(frozen=True, slots=True)
class Copied:
    """What a backup or a restore copied."""

    path: Path
    messages: int
    size: int  # bytes


def _checked(path: Path) -> int:
    """The messages in the SQLite file at ``path``, once ``integrity_check`` says ok."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            verdict = conn.execute("PRAGMA integrity_check").fetchone()[0]
            if verdict != "ok":
                raise BackupError(f"{path.name} is damaged: {verdict}")
            return int(conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.DatabaseError as error:
        raise BackupError(f"{path.name} is not an exosms database: {error}") from None


def _served(database: Path) -> bool:
    """Whether a server process holds a live claim lease on ``database`` (it renews it
    every second while it runs)."""
    import time

    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        row = conn.execute(
            "SELECT COUNT(*) FROM claim_owners WHERE lease_until > ?", (time.time(),)
        ).fetchone()
        return bool(row[0])
    except sqlite3.DatabaseError:
        return False  # not an exosms database (yet): nothing runs on it
    finally:
        conn.close()


def _copy(source: Path, target: Path) -> None:
    """SQLite's backup API from ``source`` to a new file ``target``, in steps, so that a
    server writing to ``source`` waits at most one step at a time."""
    src = sqlite3.connect(source, timeout=BUSY_TIMEOUT_MS / 1000)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst, pages=PAGES_PER_STEP, sleep=0.005)
        dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
    finally:
        dst.close()
        src.close()


def backup(database: Path, target: Path) -> Copied:
    """Back ``database`` up to ``target`` (replaced only by a copy that checks out)."""
    if not database.is_file():
        raise BackupError(f"no database at {database}: nothing to back up")
    if target.resolve() == database.resolve():
        raise BackupError("the backup must go to another file than the database")
    partial = target.with_name(f".{target.name}.partial")
    partial.unlink(missing_ok=True)
    try:
        _copy(database, partial)
        messages = _checked(partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return Copied(target, messages, target.stat().st_size)


def restore(backup_file: Path, database: Path) -> Copied:
    """Put ``backup_file`` (checked first) in place of ``database``; stop the server first."""
    if not backup_file.is_file():
        raise BackupError(f"no backup at {backup_file}")
    _checked(backup_file)
    if database.is_file() and _served(database):
        raise BackupError(
            f"exosms serve is running on {database.name} (its lease is live): stop it first"
        )
    partial = database.with_name(f".{database.name}.restoring")
    partial.unlink(missing_ok=True)
    try:
        _copy(backup_file, partial)
        messages = _checked(partial)
        for stale in (Path(f"{database}-wal"), Path(f"{database}-shm")):
            stale.unlink(missing_ok=True)  # the old file's log must not replay onto the copy
        os.replace(partial, database)
    finally:
        partial.unlink(missing_ok=True)
    return Copied(database, messages, database.stat().st_size)
