"""uvicorn's httptools protocol with the limits a server on the open internet needs.

uvicorn bounds neither how long a request may take to arrive nor how large its headers may
grow, and it answers its own errors with ``charset=utf-8``, which is not the applet's
contract. This protocol adds, per connection:

- a deadline for the whole request, headers and body (``request_timeout``; a longer one on
  the paths where a person uploads a file), however often bytes trickle in: past it the
  request gets 408 (or, if an answer has begun, the connection is closed);
- limits on the number of header lines, each line's size and the whole head (431), and on
  the body (413, from ``Content-Length`` at once, else as soon as the stream passes it);
- at most ``max_connections`` open connections and ``max_connections_per_address`` from one
  address (a trusted proxy's own connections aside), so one slow client cannot fill them;
- a refused request's connection closed once the refusal is written, its unread body never
  read;
- every answer of its own as ``text/plain`` exactly, with a length and a one-line reason;
- a repeat of a SmsSid the app has answered (Exotel's GET after its HEAD) answered at once,
  from the app's memory, without starting a task for it (``ExosmsApp.quick_answer``).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from exosms.config import Settings
from exosms.exotel.applet import answer_headers

log = logging.getLogger("exosms.http")

_REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    413: b"Content Too Large",
    431: b"Request Header Fields Too Large",
    503: b"Service Unavailable",
}


@dataclass(frozen=True, slots=True)
class EdgeLimits:
    """What one connection may do; every value is a setting (docs/guards.md)."""

    request_timeout: float = 10.0
    upload_timeout: float = 120.0
    idle_timeout: float = 5.0
    max_headers: int = 100
    max_header_bytes: int = 8192
    max_head_bytes: int = 96 * 1024
    max_body_bytes: int = 64 * 1024
    max_upload_bytes: int = 8 * 1024 * 1024
    max_connections: int = 2000
    max_connections_per_address: int = 200
    trusted_proxies: tuple[str, ...] = ()
    upload_paths: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings, upload_paths: tuple[str, ...] = ()) -> EdgeLimits:
        return cls(
            request_timeout=settings.request_timeout,
            upload_timeout=settings.upload_timeout,
            idle_timeout=settings.keep_alive_timeout,
            max_headers=settings.max_headers,
            max_header_bytes=settings.max_header_bytes,
            max_head_bytes=settings.max_head_bytes,
            max_body_bytes=settings.max_request_bytes,
            max_upload_bytes=settings.max_upload_bytes,
            max_connections=settings.max_connections,
            max_connections_per_address=settings.max_connections_per_address,
            trusted_proxies=tuple(settings.auth.trusted_proxies),
            upload_paths=upload_paths,
        )


class _Refused(Exception):
    """Raised inside a parser callback to stop parsing and answer ``status``."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def refusal(status: int, reason: str) -> bytes:
    """One of our own answers, in the applet contract's shape, closing the connection."""
    body = reason.encode("ascii", "replace") + b"\n"
    return b"".join(
        [
            b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"Error")),
            b"content-type: text/plain\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
            body,
        ]
    )


def protocol_factory(limits: EdgeLimits) -> Callable[..., HttpToolsProtocol]:
    """What uvicorn's ``http=`` takes: builds a :class:`GuardedHttpToolsProtocol` per
    connection with ``limits`` and the process's count of open connections per address (a
    picklable partial, so ``--workers`` carries it: each worker counts its own)."""
    return functools.partial(GuardedHttpToolsProtocol, limits=limits, peers=Counter())


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, limits: EdgeLimits, peers: Counter[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        self._peers = peers  # open connections per client address, shared by the process
        self._peer: str | None = None  # this connection's address, while it is counted
        self._proxies = tuple(
            ipaddress.ip_network(cidr, strict=False) for cidr in limits.trusted_proxies
        )
        self._timer: asyncio.TimerHandle | None = None
        self._waiting_for_request = True  # the timer armed is the idle one
        self._head_open = True  # bytes arriving now belong to a request's head
        self._head_bytes = 0
        self._header_count = 0
        self._body_bytes = 0
        self._body_limit = limits.max_body_bytes
        self._refusal: _Refused | None = None
        self._running: RequestResponseCycle | None = None  # the cycle whose app runs

    # -- the connection ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # Until the first byte, the idle timeout (bounded by the request deadline) applies.
        self._arm(min(self.limits.idle_timeout, self.limits.request_timeout), idle=True)
        host = self.client[0] if self.client else None
        if host is None or self._trusted(host):
            return
        self._peer = host
        self._peers[host] += 1
        if self._peers[host] > self.limits.max_connections_per_address:
            self._refuse(503, "too many connections from one address")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._peer is not None:
            self._peers[self._peer] -= 1
            if not self._peers[self._peer]:
                del self._peers[self._peer]
            self._peer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refusal is not None or self.transport.is_closing():
            return  # refused: the rest is never parsed
        head_was_open = self._head_open
        super().data_received(data)
        if self._refusal is None and self._head_open and head_was_open:
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_head_bytes:
                self._refuse(431, f"request head longer than {self.limits.max_head_bytes} bytes")

    def send_400_response(self, msg: str) -> None:
        # uvicorn calls this for whatever the parser refused, including our own refusals
        # raised inside its callbacks.
        error = self._refusal
        self._refusal = None
        if error is not None:
            self._refuse(error.status, error.reason)
        else:
            self._refuse(400, "malformed HTTP request")

    # -- parser callbacks -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_open = True
        self._head_bytes = 0
        self._header_count = 0
        self._body_bytes = 0
        self._body_limit = self.limits.max_body_bytes
        self._arm(self.limits.request_timeout, idle=False)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.limits.max_headers:
            self._stop(431, f"more than {self.limits.max_headers} header lines")
        if len(name) + len(value) > self.limits.max_header_bytes:
            shown = name[:40].decode("ascii", "replace")
            self._stop(431, f"header {shown} longer than {self.limits.max_header_bytes} bytes")
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head_open = False
        self._head_bytes = 0
        if self.limits.upload_paths:
            path = self.url.split(b"?", 1)[0].decode("latin-1")
            if path.startswith(self.limits.upload_paths):
                self._body_limit = self.limits.max_upload_bytes
                self._arm(self.limits.upload_timeout, idle=False)
        for name, value in self.headers:
            if name == b"content-length" and value.isdigit() and int(value) > self._body_limit:
                self._stop(413, f"body longer than {self._body_limit} bytes")
        if len(self.connections) > self.limits.max_connections or (
            len(self.tasks) >= self.limits.max_connections
        ):
            self._stop(503, "server busy: too many connections")
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > self._body_limit:
            self._stop(413, f"body longer than {self._body_limit} bytes")
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        self._running = cycle
        if not self._answered_at_once(cycle, getattr(app, "quick_answer", None)):
            super()._start_asgi_task(cycle, app)

    def _answered_at_once(
        self, cycle: RequestResponseCycle, quick: Callable[[Any], bytes | None] | None
    ) -> bool:
        """Answer a request the app has the answer for at hand (``ExosmsApp.quick_answer``:
        Exotel's GET after its HEAD) here, with no task and no ASGI messages, in the bytes
        ``RequestResponseCycle.send`` would write for it."""
        if quick is None or cycle.waiting_for_100_continue or self.transport.is_closing():
            return False
        for name, value in cycle.scope["headers"]:
            if (name == b"content-length" and value != b"0") or name == b"transfer-encoding":
                return False  # a body follows: the usual way answers and stops reading it
        try:
            body = quick(cycle.scope)
        except Exception:  # a fault here must not be the connection's: go the usual way
            log.exception("answering a repeat at once failed")
            return False
        if body is None:
            return False
        content = [STATUS_LINE[200]]
        for name, value in (*cycle.default_headers, *answer_headers(body)):
            content += [name, b": ", value, b"\r\n"]
        if not cycle.keep_alive:
            content.append(b"connection: close\r\n")
        content.append(b"\r\n")
        if cycle.scope["method"] != "HEAD":
            content.append(body)
        cycle.response_started = cycle.response_complete = True
        cycle.more_body = False  # nothing more is read for it (it has no body)
        self.transport.write(b"".join(content))
        if not cycle.keep_alive:
            self.transport.close()
        cycle.on_response()
        return True

    def on_response_complete(self) -> None:
        cycle = self.cycle
        if not self.pipeline and cycle is not None and cycle.more_body:
            # Answered before its body arrived (a 401, a 413): never read the rest.
            self.server_state.total_requests += 1
            self._disarm()
            self.transport.close()
            return
        super().on_response_complete()

    # -- helpers ---------------------------------------------------------------------------

    def _trusted(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self._proxies)

    def _stop(self, status: int, reason: str) -> None:
        self._refusal = _Refused(status, reason)
        raise self._refusal

    def _refuse(self, status: int, reason: str) -> None:
        """Answer ``status`` unless an answer has begun, then close the connection; the
        request in flight, if any, sees a disconnect and writes nothing more."""
        self._disarm()
        self._refusal = _Refused(status, reason)
        if self.transport.is_closing():
            return
        running = self._running
        started = running is not None and running.response_started and not running.response_complete
        for pending in (running, self.cycle, *(queued for queued, _ in self.pipeline)):
            if pending is not None and not pending.response_complete:
                pending.disconnected = True
                pending.message_event.set()
        self.pipeline.clear()
        if not started:
            self.transport.write(refusal(status, reason))
        self.transport.close()

    def _arm(self, seconds: float, *, idle: bool) -> None:
        self._disarm()
        self._waiting_for_request = idle
        self._timer = self.loop.call_later(seconds, self._too_slow)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _too_slow(self) -> None:
        self._timer = None
        if self._waiting_for_request:
            # Nothing of a request arrived: an idle connection, closed quietly.
            if not self.transport.is_closing():
                self.transport.close()
            return
        self._refuse(408, "request not received within the time allowed")
