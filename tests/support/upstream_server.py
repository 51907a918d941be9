"""A small backend for upstream-URL rules, with one path per behaviour."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: str, kind: str = "text/plain") -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if parts.path == "/status":
            self._send(
                200,
                f"Order {query.get('number', '?')} for {query.get('phone', '?')} is out for delivery\n",
            )
        elif parts.path == "/empty":
            self._send(200, "")
        elif parts.path == "/error":
            self._send(500, "internal error")
        elif parts.path == "/html":
            self._send(200, "<p>hi</p>", "text/html; charset=utf-8")
        elif parts.path == "/slow":
            time.sleep(3)
            self._send(200, "too late")
        else:
            self._send(404, "no such path")

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        self._send(
            200, f"posted {form.get('Body')} from {form.get('From')} sid {form.get('SmsSid')}"
        )


@contextmanager
def upstream_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
