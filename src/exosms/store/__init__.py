"""Where messages live: the store protocol, its schema, and the stores that implement it."""

from exosms.store.base import (
    OWNER_LEASE,
    AnswerPending,
    Claim,
    ClaimLost,
    ClaimStatus,
    Completion,
    NewMessage,
    OptOut,
    OutboxWrite,
    SessionWrite,
    Store,
    StoredMessage,
    StoreUnavailable,
)
from exosms.store.database import Database
from exosms.store.opening import open_database, open_store

__all__ = [
    "OWNER_LEASE",
    "AnswerPending",
    "Claim",
    "ClaimLost",
    "ClaimStatus",
    "Completion",
    "Database",
    "NewMessage",
    "OptOut",
    "OutboxWrite",
    "SessionWrite",
    "Store",
    "StoreUnavailable",
    "StoredMessage",
    "open_database",
    "open_store",
]
