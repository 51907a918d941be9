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
from exosms.store.urls import open_store

__all__ = [
    "OWNER_LEASE",
    "AnswerPending",
    "Claim",
    "ClaimLost",
    "ClaimStatus",
    "Completion",
    "NewMessage",
    "OptOut",
    "OutboxWrite",
    "SessionWrite",
    "Store",
    "StoreUnavailable",
    "StoredMessage",
    "open_store",
]
