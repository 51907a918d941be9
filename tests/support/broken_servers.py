"""Deliberately broken reply URLs, one per path, each a mistake seen in real integrations.

The server writes raw bytes so that each mistake is exactly what real servers send.
"""

from __future__ import annotations

import socketserver
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

REPLY = "Thanks for your order inquiry"
_counter = {"n": 0}


def _answer(status: str, headers: list[str], body: bytes) -> bytes:
    head = f"HTTP/1.1 {status}\r\n" + "".join(h + "\r\n" for h in headers) + "\r\n"
    return head.encode("latin-1") + body


def respond(method: str, path: str) -> bytes:
    body = REPLY.encode()
    plain = ["Content-Type: text/plain", f"Content-Length: {len(body)}", "Connection: close"]
    send_body = body if method == "GET" else b""
    mode = path.split("?")[0].strip("/")
    if mode == "ok":
        return _answer("200 OK", plain, send_body)
    if mode == "charset":  # Flask, Starlette's PlainTextResponse, aiohttp, ...
        headers = ["Content-Type: text/plain; charset=utf-8", *plain[1:]]
        return _answer("200 OK", headers, send_body)
    if mode == "head405":  # FastAPI's GET routes
        if method == "HEAD":
            return _answer(
                "405 Method Not Allowed", ["Content-Length: 31", "Connection: close"], b""
            )
        return _answer("200 OK", plain, send_body)
    if mode == "chunked":
        chunked = ["Content-Type: text/plain", "Transfer-Encoding: chunked", "Connection: close"]
        if method == "HEAD":
            return _answer("200 OK", chunked, b"")
        return _answer("200 OK", chunked, b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
    if mode == "cl0body":  # PHP scripts that send Content-Length: 0 and then echo a reply
        headers = ["Content-Type: text/plain", "Content-Length: 0", "Connection: close"]
        return _answer("200 OK", headers, send_body)
    if mode == "wronglength":  # characters counted instead of bytes
        text = "धन्यवाद".encode()
        headers = ["Content-Type: text/plain", "Content-Length: 7", "Connection: close"]
        return _answer("200 OK", headers, text if method == "GET" else b"")
    if mode == "redirect":
        return _answer(
            "302 Found",
            ["Location: https://example.in/exotel", "Content-Length: 0", "Connection: close"],
            b"",
        )
    if mode == "slow":
        time.sleep(0.6)
        return _answer("200 OK", plain, send_body)
    if mode == "differs":  # a reply made fresh on every GET
        _counter["n"] += 1
        fresh = f"Your code is {_counter['n']:04d}".encode()
        headers = ["Content-Type: text/plain", f"Content-Length: {len(fresh)}", "Connection: close"]
        return _answer("200 OK", headers, fresh if method == "GET" else b"")
    if mode == "headdiffers":
        if method == "HEAD":
            return _answer("200 OK", ["Content-Type: text/html", *plain[1:]], b"")
        return _answer("200 OK", plain, send_body)
    if mode == "toolong":
        long = ("₹" + "x" * 99).encode() * 6
        headers = ["Content-Type: text/plain", f"Content-Length: {len(long)}", "Connection: close"]
        return _answer("200 OK", headers, long if method == "GET" else b"")
    return _answer("404 Not Found", ["Content-Length: 0", "Connection: close"], b"")


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        request_line = self.rfile.readline().decode("latin-1").split()
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass
        if len(request_line) < 2:
            return
        self.wfile.write(respond(request_line[0], request_line[1]))


@contextmanager
def broken_server() -> Iterator[str]:
    """Serve the broken modes on a loopback port; yields the base URL."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
