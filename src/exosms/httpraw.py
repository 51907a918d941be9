"""HTTP exchanges recorded byte for byte, over a socket or straight into an ASGI app.

Ordinary clients repair what a checker must see: they de-chunk, drop bytes past
``Content-Length`` and follow redirects. This client sends ``Connection: close`` and keeps
the answer as the server framed it.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

MAX_HEAD = 64 * 1024
EXTRA_WAIT = 0.2  # seconds to wait for bytes a server sends past its Content-Length

ASGIApp = Callable[
    [
        MutableMapping[str, Any],
        Callable[[], Awaitable[MutableMapping[str, Any]]],
        Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ],
    Awaitable[None],
]


class Unreachable(Exception):
    """The server could not be reached or did not answer in time."""


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request and the answer exactly as it came."""

    method: str
    target: str
    status: int
    headers: tuple[tuple[str, str], ...]  # names lower-cased, in the order sent
    body: bytes  # as framed: the Content-Length bytes, the de-chunked body, or up to EOF
    chunked: bool
    extra: bytes  # bytes sent past Content-Length (or any body bytes on a HEAD answer)
    elapsed_ms: float

    def values(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name]

    def first(self, name: str) -> str | None:
        found = self.values(name)
        return found[0] if found else None


@dataclass(frozen=True, slots=True)
class Endpoint:
    scheme: str
    host: str
    port: int
    path: str

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(parts.scheme, parts.hostname, port, parts.path or "/")

    @property
    def authority(self) -> str:
        default = 443 if self.scheme == "https" else 80
        return self.host if self.port == default else f"{self.host}:{self.port}"


def _parse_head(block: bytes) -> tuple[int, tuple[tuple[str, str], ...]]:
    lines = block.decode("latin-1").split("\r\n")
    status_line = lines[0].split(" ", 2)
    if len(status_line) < 2 or not status_line[0].startswith("HTTP/"):
        raise Unreachable(f"not an HTTP answer: {lines[0][:80]!r}")
    try:
        status = int(status_line[1])
    except ValueError:
        raise Unreachable(f"not an HTTP status: {lines[0][:80]!r}") from None
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        headers.append((name.strip().lower(), value.strip()))
    return status, tuple(headers)


def _dechunk(raw: bytes) -> bytes:
    body = bytearray()
    rest = raw
    while rest:
        size_line, sep, rest = rest.partition(b"\r\n")
        if not sep:
            break
        try:
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
        except ValueError:
            break
        if size == 0:
            break
        body += rest[:size]
        rest = rest[size + 2 :]
    return bytes(body)


async def _read_more(reader: asyncio.StreamReader, wait: float) -> bytes:
    data = bytearray()
    try:
        while True:
            chunk = await asyncio.wait_for(reader.read(65536), wait)
            if not chunk:
                break
            data += chunk
    except (TimeoutError, ConnectionError):
        pass
    return bytes(data)


async def fetch(url: str, method: str, query: str, *, timeout: float = 15.0) -> Exchange:
    """Send ``method url?query`` over a new connection and record the answer as framed."""
    endpoint = Endpoint.parse(url)
    target = endpoint.path + ("?" + query if query else "")
    context = ssl.create_default_context() if endpoint.scheme == "https" else None
    started = time.perf_counter()
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(endpoint.host, endpoint.port, ssl=context, limit=MAX_HEAD),
            timeout,
        )
    except (OSError, TimeoutError) as error:
        raise Unreachable(
            f"cannot connect to {endpoint.authority}: {error or 'timed out'}"
        ) from None
    try:
        request = (
            f"{method} {target} HTTP/1.1\r\nHost: {endpoint.authority}\r\n"
            "User-Agent: exosms-simulate\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        )
        writer.write(request.encode("latin-1"))
        await writer.drain()
        try:
            block = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError) as error:
            raise Unreachable(
                f"{endpoint.authority} closed without an HTTP answer: {error}"
            ) from None
        except TimeoutError:
            raise Unreachable(f"{endpoint.authority} did not answer within {timeout:g}s") from None
        status, headers = _parse_head(block[:-4])
        names = dict(headers)
        chunked = "chunked" in names.get("transfer-encoding", "").lower()
        declared = names.get("content-length")
        body = b""
        extra = b""
        if method == "HEAD" or status in (204, 304) or status < 200:
            elapsed = (time.perf_counter() - started) * 1000
            extra = await _read_more(reader, EXTRA_WAIT)
        elif chunked:
            raw = await _read_more(reader, timeout)
            elapsed = (time.perf_counter() - started) * 1000
            body = _dechunk(raw)
        elif declared is not None and declared.isdigit():
            try:
                body = await asyncio.wait_for(reader.readexactly(int(declared)), timeout)
            except asyncio.IncompleteReadError as short:
                body = short.partial
            except TimeoutError:
                body = b""
            elapsed = (time.perf_counter() - started) * 1000
            extra = await _read_more(reader, EXTRA_WAIT)
        else:
            body = await _read_more(reader, timeout)
            elapsed = (time.perf_counter() - started) * 1000
    finally:
        writer.close()
    return Exchange(method, target, status, headers, body, chunked, extra, elapsed)


async def fetch_asgi(app: ASGIApp, path: str, method: str, query: str) -> Exchange:
    """Call an ASGI app in process, recording what it sends as uvicorn would frame it."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode("latin-1"),
        "root_path": "",
        "headers": [(b"host", b"exosms.simulate"), (b"user-agent", b"exosms-simulate")],
        "client": ("127.0.0.1", 50000),
        "server": ("exosms.simulate", 80),
    }
    sent: list[MutableMapping[str, Any]] = []
    delivered = False

    async def receive() -> MutableMapping[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # never: the request has no more body
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    started = time.perf_counter()
    await app(scope, receive, send)
    elapsed = (time.perf_counter() - started) * 1000
    start = next(m for m in sent if m["type"] == "http.response.start")
    headers = tuple(
        (bytes(k).decode("latin-1").lower(), bytes(v).decode("latin-1"))
        for k, v in start.get("headers", [])
    )
    raw = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    names = dict(headers)
    # uvicorn chunks an answer that declares no length (HEAD, 204 and 304 excepted).
    chunked = "content-length" not in names and method != "HEAD" and start["status"] >= 200
    body, extra = raw, b""
    if method == "HEAD":
        body, extra = b"", raw
    elif names.get("content-length", "").isdigit():
        cut = int(names["content-length"])
        body, extra = raw[:cut], raw[cut:]
    return Exchange(
        method, f"{path}?{query}", int(start["status"]), headers, body, chunked, extra, elapsed
    )
