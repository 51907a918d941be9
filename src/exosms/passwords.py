"""The admin password: stored only as a scrypt hash (Python's hashlib, OpenSSL's scrypt).

The stored form is ``scrypt$<n>$<r>$<p>$<salt>$<hash>`` with salt and hash in URL-safe base64,
so the cost can be raised later without breaking existing hashes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

N, R, P = 2**14, 8, 1  # about 50 ms and 16 MiB per check
MIN_LENGTH = 10


class PasswordError(ValueError):
    """A password (or a stored hash) that cannot be used; the message says why."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str) -> str:
    """A new hash of ``password``, with a fresh random salt."""
    if len(password) < MIN_LENGTH:
        raise PasswordError(f"the password must have at least {MIN_LENGTH} characters")
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=N, r=R, p=P, maxmem=64 * 2**20)
    return f"scrypt${N}${R}${P}${_b64(salt)}${_b64(digest)}"


def check_hash_format(stored: str) -> None:
    """Raise :class:`PasswordError` when ``stored`` is not a hash this module made."""
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise PasswordError("not an exosms password hash (expected scrypt$n$r$p$salt$hash)")
    try:
        n, r, p = (int(value) for value in parts[1:4])
        _unb64(parts[4])
        _unb64(parts[5])
    except ValueError:
        raise PasswordError("damaged password hash: run `exosms password` again") from None
    if n < 2**10 or n & (n - 1) or not 1 <= r <= 64 or not 1 <= p <= 16:
        raise PasswordError("password hash with unusable scrypt parameters")


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (compared in constant time)."""
    check_hash_format(stored)
    _, n, r, p, salt, expected = stored.split("$")
    digest = hashlib.scrypt(
        password.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p), maxmem=128 * 2**20
    )
    return hmac.compare_digest(digest, _unb64(expected))


def signing_key(stored: str) -> bytes:
    """The key that signs login cookies: derived from the stored hash, so every worker
    process agrees on it and a new password signs every old cookie out."""
    return hashlib.sha256(b"exosms-inbox-cookie\x00" + stored.encode()).digest()
