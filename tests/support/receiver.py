"""A real HTTP receiver of forwarded events, over loopback sockets, for the tests.

It verifies every request with the standardwebhooks package (as a business's receiver
would), records what it accepted, and can be told to answer 500s, ask for Retry-After,
or go away and come back on the same port.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Received:
    id: str
    type: str
    sender: str
    payload: dict[str, Any]


@dataclass
class Receiver:
    """``accepted``: every event it answered 2xx, in arrival order."""

    port: int
    secret: str
    accepted: list[Received] = field(default_factory=list)
    refused: int = 0  # failed signature checks
    fail_next: int = 0  # answer this many requests with 500 first
    retry_after: str | None = None  # sent with those 500s
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    changed: threading.Condition = field(init=False)
    _server: ThreadingHTTPServer | None = None

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)

    def start(self) -> Receiver:
        receiver = self
        verifier = Webhook(self.secret)

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver.lock:
                    receiver.requests += 1
                    if receiver.fail_next > 0:
                        receiver.fail_next -= 1
                        self.send_response(500)
                        if receiver.retry_after:
                            self.send_header("retry-after", receiver.retry_after)
                        self.send_header("content-length", "0")
                        self.end_headers()
                        return
                try:
                    payload = verifier.verify(body, dict(self.headers.items()))
                except (WebhookVerificationError, ValueError):
                    with receiver.lock:
                        receiver.refused += 1
                    self.send_response(401)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                with receiver.changed:
                    receiver.accepted.append(
                        Received(payload["id"], payload["type"], payload["sender"], payload)
                    )
                    receiver.changed.notify_all()
                self.send_response(204)
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        """Wait (on the receiver's own notifications) until ``count`` distinct events came."""
        with self.changed:
            ok = self.changed.wait_for(lambda: len(self.ids()) >= count, timeout)
            assert ok, f"{len(self.ids())} of {count} events after {timeout}s"
            return list(self.accepted)

    def wait_for_ids(self, wanted: set[str], timeout: float = 30.0) -> list[Received]:
        """Wait until every one of ``wanted`` came (others may have come too)."""
        with self.changed:
            ok = self.changed.wait_for(lambda: wanted <= self.ids(), timeout)
            assert ok, f"missing after {timeout}s: {sorted(wanted - self.ids())[:5]}"
            return list(self.accepted)

    def ids(self) -> set[str]:
        return {event.id for event in self.accepted}


def per_sender(events: list[Received]) -> dict[str, list[str]]:
    """Each sender's event ids in arrival order, duplicates dropped (by id)."""
    seen: set[str] = set()
    order: dict[str, list[str]] = {}
    for event in events:
        if event.id not in seen:
            seen.add(event.id)
            order.setdefault(event.sender, []).append(event.id)
    return order


def dumps(events: list[Received]) -> str:
    return json.dumps([e.payload for e in events], indent=1)[:4000]
