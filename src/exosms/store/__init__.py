"""Where messages live: the store protocol, its schema, and the stores that implement it."""

from exosms.store.base import (
    Claim,
    ClaimStatus,
    Completion,
    NewMessage,
    OptOut,
    SessionWrite,
    Store,
    StoredMessage,
    StoreUnavailable,
)
from exosms.store.urls import open_store

__all__ = [
    "Claim",
    "ClaimStatus",
    "Completion",
    "NewMessage",
    "OptOut",
    "SessionWrite",
    "Store",
    "StoreUnavailable",
    "StoredMessage",
    "open_store",
]
