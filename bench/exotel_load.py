"""Exotel's own shape of load: for each SMS a HEAD, then a GET with the same fresh SmsSid,
in sequence on one kept-alive connection; many connections at once.

wrk cannot send it (it waits for a HEAD answer's body: wrk issue #245, so bench/exotel.lua
sends GET + GET for an SMS that gets a reply); this small generator can. It is Python
(asyncio on uvloop), so it takes more CPU than wrk for the same rate: compare servers
within one run only.

Usage: python bench/exotel_load.py http://127.0.0.1:8000 [--connections 32] [--duration 8]
                                  [--webhook]
Prints one JSON object: SMS/s, the time per SMS (HEAD and GET, or the webhook's POST)
p50/p99 in ms, errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
import uuid
from urllib.parse import quote, urlsplit

BODIES = ["ECHO Thank you for your order", "HELP", "ORDER 1001", "आर्डर कहाँ है?", "thanks, bye"]


async def _read_answer(reader: asyncio.StreamReader, has_body: bool) -> bytes:
    """One answer's head (and body, skipped); its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if has_body and length:
        await reader.readexactly(length)
    return head[9:12]


async def _webhook(
    host: str, port: int, number: int, until: float, times: list[float], errors: list[int]
) -> None:
    """Exotel's SMS webhook: one form POST per SMS, answered ``ok``; the reply goes out
    through the send API."""
    reader, writer = await asyncio.open_connection(host, port)
    nonce = uuid.uuid4().hex[:10]
    rng = random.Random(nonce)
    sent = 0
    try:
        while time.monotonic() < until:
            sent += 1
            form = (
                f"SmsSid=w{number}x{nonce}x{sent}&From=9{rng.randrange(10**9):09d}"
                f"&To=08039591234&Body={quote('ECHO Thank you for your order')}"
            ).encode()
            started = time.perf_counter()
            writer.write(
                f"POST /exotel/webhook HTTP/1.1\r\nHost: {host}\r\nContent-Type:"
                f" application/x-www-form-urlencoded\r\nContent-Length: {len(form)}\r\n\r\n".encode()
                + form
            )
            if await _read_answer(reader, True) != b"200":
                errors.append(1)
            times.append(time.perf_counter() - started)
    finally:
        writer.close()


async def _connection(
    host: str, port: int, number: int, until: float, times: list[float], errors: list[int]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    nonce = uuid.uuid4().hex[:10]
    rng = random.Random(nonce)  # a fresh sender per SMS, as bench/exotel.lua: no guard trips
    sent = 0
    try:
        while time.monotonic() < until:
            sent += 1
            body = quote(BODIES[sent % len(BODIES)])
            target = (
                f"/exotel/sms?SmsSid=e{number}x{nonce}x{sent}&From=9{rng.randrange(10**9):09d}"
                f"&To=08039591234&Date=2026-12-01+10%3A00%3A00&Body={body}"
            )
            started = time.perf_counter()
            for method in ("HEAD", "GET"):
                writer.write(f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
                if await _read_answer(reader, method == "GET") != b"200":
                    errors.append(1)
            times.append(time.perf_counter() - started)
    finally:
        writer.close()


async def load(
    url: str, connections: int, duration: float, webhook: bool = False
) -> dict[str, float]:
    """Drive ``url`` for ``duration`` seconds (the applet, or with ``webhook`` the SMS
    webhook); the figures."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    times: list[float] = []
    errors: list[int] = []
    until = time.monotonic() + duration
    began = time.monotonic()
    client = _webhook if webhook else _connection
    await asyncio.gather(*(client(host, port, n, until, times, errors) for n in range(connections)))
    elapsed = time.monotonic() - began
    ordered = sorted(times)
    return {
        "sms_per_s": len(times) / elapsed,
        "sms": len(times),
        "p50_ms": statistics.median(ordered) * 1000 if ordered else 0.0,
        "p99_ms": ordered[int(len(ordered) * 0.99) - 1] * 1000 if len(ordered) > 1 else 0.0,
        "errors": len(errors),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--webhook", action="store_true", help="POST Exotel's SMS webhook")
    args = parser.parse_args()
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover (Windows)
        runner = asyncio.run
    print(json.dumps(runner(load(args.url, args.connections, args.duration, args.webhook))))


if __name__ == "__main__":
    main()
