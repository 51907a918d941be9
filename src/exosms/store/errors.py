"""The one translation of a database driver's failure into :class:`StoreUnavailable`.

Callers above the store see one exception with a one-line reason, whatever the driver:
sqlite3, aiosqlite, asyncpg, or SQLAlchemy around them (whose messages end in a
"Background on this error at: https://sqlalche.me/..." line that is noise in a log).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy.exc import SQLAlchemyError

from exosms.store.base import StoreUnavailable


def describe(error: BaseException) -> str:
    """A one-line reason, never empty (``TimeoutError()`` prints as nothing)."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def reason(error: BaseException) -> str:
    """The driver's own one-line message under SQLAlchemy's wrapper."""
    cause = error.__cause__ or getattr(error, "orig", None) or error
    text = str(cause).strip()
    return text.splitlines()[0] if text else type(cause).__name__


@contextlib.contextmanager
def sql_errors() -> Iterator[None]:
    """Raise :class:`StoreUnavailable` for any SQLAlchemy error in the block."""
    try:
        yield
    except SQLAlchemyError as error:
        raise StoreUnavailable(reason(error)) from error
