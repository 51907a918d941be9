"""The Send-a-Reply endpoint: parse Exotel's query, ask the engine, render the answer.

Written as a raw ASGI app so that every header byte is ours: ``Content-Type: text/plain``
exactly, a true ``Content-Length``, and the same headers for HEAD as for GET.
"""

from __future__ import annotations

import logging
import time

from starlette.types import Receive, Scope, Send

from exosms.engine import ReplyEngine
from exosms.exotel.applet import BadRequest, answer_headers, parse_query, peek_sid
from exosms.metrics import Metrics
from exosms.store.base import AnswerPending, StoreUnavailable
from exosms.web.auth import Gatekeeper

log = logging.getLogger("exosms.request")

_EMPTY_HEADERS = answer_headers(b"")


async def send_text(
    send: Send,
    status: int,
    text: str,
    extra: list[tuple[bytes, bytes]] | None = None,
    *,
    head: bool = False,
) -> None:
    """Send a one-line ``text/plain`` answer (errors, health checks)."""
    body = text.encode("utf-8")
    headers = answer_headers(body) + (extra or [])
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


class AppletEndpoint:
    """ASGI app for Exotel's applet URL (GET and HEAD)."""

    def __init__(
        self,
        engine: ReplyEngine,
        gatekeeper: Gatekeeper,
        *,
        max_body_chars: int,
        max_query_bytes: int,
        metrics: Metrics | None = None,
    ) -> None:
        self.engine = engine
        self.metrics = metrics
        self.gatekeeper = gatekeeper
        self.max_body_chars = max_body_chars
        self.max_query_bytes = max_query_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        method: str = scope["method"]
        head = method == "HEAD"
        if method != "GET" and not head:
            await send_text(send, 405, "use GET or HEAD\n", [(b"allow", b"GET, HEAD")])
            return
        refusal = self.gatekeeper.check(scope, scope.get("path_params", {}).get("token"))
        if refusal is not None:
            log.info("refused %s status=%d reason=%s", method, refusal.status, refusal.reason)
            await send_text(
                send, refusal.status, refusal.reason + "\n", list(refusal.headers), head=head
            )
            return
        query: bytes = scope["query_string"]
        sid = peek_sid(query) if len(query) <= self.max_query_bytes else None
        replayed = await self.engine.replay(sid) if sid is not None else None
        if sid is not None and replayed is not None:
            await self._send_answer(send, replayed.body, head)
            self._log(sid, method, replayed.outcome, started)
            return
        try:
            request = parse_query(
                query,
                max_body_chars=self.max_body_chars,
                max_query_bytes=self.max_query_bytes,
            )
        except BadRequest as error:
            log.info("rejected %s status=%d reason=%s", method, error.status, error.reason)
            await send_text(send, error.status, error.reason + "\n", head=head)
            return
        if request is None:  # Exotel (or a person) checking the URL: no SMS, nothing stored
            await send({"type": "http.response.start", "status": 200, "headers": _EMPTY_HEADERS})
            await send({"type": "http.response.body", "body": b""})
            return
        try:
            answer = await self.engine.receive(request, method)
        except AnswerPending as error:
            log.warning("sid=%s %s not answered yet: %s", request.sms_sid, method, error)
            await send_text(send, 503, "another process is still answering, try again\n", head=head)
            return
        except StoreUnavailable as error:
            log.error("sid=%s %s database unavailable: %s", request.sms_sid, method, error)
            if self.metrics is not None:
                self.metrics.database_error("applet")
            await send_text(send, 503, "database unavailable, try again\n", head=head)
            return
        except Exception:
            log.exception("sid=%s %s failed", request.sms_sid, method)
            await send_text(send, 503, "temporarily unable to answer, try again\n", head=head)
            return
        await self._send_answer(send, answer.body, head)
        self._log(request.sms_sid, method, answer.outcome, started)

    def quick(self, scope: Scope, token: str | None) -> bytes | None:
        """The body that answers a repeat of a SmsSid this process has answered (Exotel's
        GET after its HEAD, a retry), found without waiting: the HTTP protocol sends it at
        once, with ``answer_headers``, without the ASGI round. ``None``: anything else (a
        new SMS, a refusal, an answer still being worked out) takes the usual way."""
        method: str = scope["method"]
        query: bytes = scope["query_string"]
        if (method != "GET" and method != "HEAD") or len(query) > self.max_query_bytes:
            return None
        sid = peek_sid(query)
        if sid is None or sid not in self.engine.answers.replies:
            return None
        if not self.gatekeeper.allows(scope, token):
            return None  # refused the usual way, with its reason (and counted once)
        started = time.perf_counter()
        replayed = self.engine.replay_cached(sid)
        if replayed is None:
            return None
        self._log(sid, method, replayed.outcome, started)
        return replayed.body

    @staticmethod
    async def _send_answer(send: Send, body: bytes, head: bool) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": answer_headers(body)})
        await send({"type": "http.response.body", "body": b"" if head else body})

    @staticmethod
    def _log(sid: str, method: str, outcome: str, started: float) -> None:
        elapsed = (time.perf_counter() - started) * 1000
        log.info("sid=%s %s %s %.1fms", sid, method, outcome, elapsed)
