"""Who may call the webhooks: a secret token, HTTP Basic auth, an IP allowlist.

Exotel does not sign its requests and publishes no IP ranges, so all three are offered and
may be combined. Secrets are compared in constant time and never logged.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
from dataclasses import dataclass, field
from urllib.parse import unquote

from starlette.types import Scope

from exosms.config import AuthSettings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    reason: str
    headers: tuple[tuple[bytes, bytes], ...] = ()


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _networks(cidrs: list[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def _in(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def _query_token(query: bytes) -> str | None:
    for pair in query.split(b"&"):
        name, _, value = pair.partition(b"=")
        if name == b"token":
            return unquote(value.decode("latin-1"))
    return None


@dataclass
class Gatekeeper:
    """Checks one request against the ``[auth]`` settings."""

    settings: AuthSettings
    refused: int = 0  # requests turned away by this process (shown on /healthz)
    _allow: tuple[Network, ...] = field(init=False)
    _proxies: tuple[Network, ...] = field(init=False)

    def __post_init__(self) -> None:
        self._allow = _networks(self.settings.allow_ips)
        self._proxies = _networks(self.settings.trusted_proxies)

    @property
    def token(self) -> str | None:
        secret = self.settings.token
        return secret.get_secret_value() if secret is not None else None

    def client_address(self, scope: Scope) -> str:
        """The caller's address; behind a trusted proxy, from ``X-Forwarded-For``."""
        peer = str((scope.get("client") or ("", 0))[0])
        if not self._proxies or not _in(peer, self._proxies):
            return peer
        forwarded: list[str] = [
            bytes(value).decode("latin-1")
            for name, value in scope.get("headers", [])
            if name == b"x-forwarded-for"
        ]
        hops = [h.strip() for line in forwarded for h in line.split(",") if h.strip()]
        # The rightmost address our own proxies did not add is the real client.
        for hop in reversed(hops):
            if not _in(hop, self._proxies):
                return hop
        return hops[0] if hops else peer

    def is_https(self, scope: Scope) -> bool:
        """Whether the client reached us over HTTPS: directly, or through a trusted proxy
        that says so in ``X-Forwarded-Proto``."""
        if scope.get("scheme") == "https":
            return True
        peer = str((scope.get("client") or ("", 0))[0])
        if not self._proxies or not _in(peer, self._proxies):
            return False
        for name, value in scope.get("headers", []):
            if name == b"x-forwarded-proto":
                return bool(bytes(value).decode("latin-1").strip().lower() == "https")
        return False

    def check(self, scope: Scope, path_token: str | None, *, basic: bool = True) -> Refusal | None:
        """Allowlist, token, and (with ``basic``) Basic auth. Exotel's status callbacks carry
        no credentials, so their endpoint checks the allowlist and token only."""
        refusal = self._check(scope, path_token, basic)
        if refusal is not None:
            self.refused += 1
        return refusal

    def allows(self, scope: Scope, path_token: str | None) -> bool:
        """Whether :meth:`check` would let the request through (nothing counted)."""
        return self._check(scope, path_token, True) is None

    def _check(self, scope: Scope, path_token: str | None, basic: bool) -> Refusal | None:
        if self._allow and not _in(self.client_address(scope), self._allow):
            return Refusal(403, "address not allowed")
        expected = self.token
        if expected is not None:
            given = path_token if path_token is not None else _query_token(scope["query_string"])
            if given is None:
                return Refusal(401, "missing token")
            if not _same(given, expected):
                return Refusal(401, "wrong token")
        elif path_token is not None:
            return Refusal(404, "not found")  # no token configured: /exotel/sms/<x> is no URL
        if basic and self.settings.basic_user is not None:
            return self._check_basic(scope)
        return None

    def _check_basic(self, scope: Scope) -> Refusal | None:
        challenge = ((b"www-authenticate", b'Basic realm="exosms"'),)
        header = next((v for k, v in scope.get("headers", []) if k == b"authorization"), None)
        if header is None or header[:6].lower() != b"basic ":
            return Refusal(401, "missing basic auth", challenge)
        try:
            user, _, password = (
                base64.b64decode(header[6:].strip(), validate=True).decode("utf-8").partition(":")
            )
        except (binascii.Error, UnicodeDecodeError):
            return Refusal(401, "malformed basic auth", challenge)
        expected_password = self.settings.basic_password
        good_user = _same(user, self.settings.basic_user or "")
        good_password = _same(
            password, expected_password.get_secret_value() if expected_password else ""
        )
        if not (good_user and good_password):
            return Refusal(401, "wrong user or password", challenge)
        return None
