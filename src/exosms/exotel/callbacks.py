"""Status callbacks we can trust although Exotel signs nothing.

Exotel echoes the ``CustomField`` of a sent SMS in its status callback. exosms puts the
outbox row's id there with an HMAC of it (``exosms-<id>-<mac>``), keyed by a secret Exotel
never sees: a callback naming a row must carry the MAC that only this server can make, so a
forged callback changes nothing. (The StatusCallback URL also carries the webhook token.)
"""

from __future__ import annotations

import hashlib
import hmac
import re

PREFIX = "exosms-"
MAC_HEX = 16  # 64 bits of HMAC-SHA256: a forger gets one guess per request
_FIELD = re.compile(r"exosms-([0-9]{1,18})-([0-9a-f]{16})")


def key_from_secret(secret: str) -> bytes:
    """The signing key derived from a secret of the settings (the API token by default)."""
    return hmac.new(secret.encode(), b"exosms status callbacks", hashlib.sha256).digest()


def sign(row_id: int, key: bytes) -> str:
    """The ``CustomField`` for outbox row ``row_id``."""
    mac = hmac.new(key, f"{PREFIX}{row_id}".encode(), hashlib.sha256).hexdigest()[:MAC_HEX]
    return f"{PREFIX}{row_id}-{mac}"


def verify(custom_field: str, key: bytes) -> int | None:
    """The row id a ``CustomField`` names, or ``None`` if it is not one we signed."""
    found = _FIELD.fullmatch(custom_field)
    if found is None or not key:
        return None
    row_id = int(found[1])
    return row_id if hmac.compare_digest(sign(row_id, key), custom_field) else None
