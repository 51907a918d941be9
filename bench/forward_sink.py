"""A receiver for the forwarding benchmark: takes every event (a webhook POST, or a
JetStream message) and keeps the lag of each: arrival minus the event's own time.

    python bench/forward_sink.py http PORT
    python bench/forward_sink.py nats PORT NATS_URL STREAM

Either way it answers ``GET /stats`` (count, lag p50/p99 in ms) and ``POST /reset`` on
PORT. The webhook side is a minimal HTTP/1.1 keep-alive server on asyncio, so that the
receiver costs as little CPU as it can: it does not verify signatures (the tests do).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time

LAGS: list[float] = []


def stats() -> bytes:
    ordered = sorted(LAGS)

    def pct(q: float) -> float | None:
        return (
            round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)
            if ordered
            else None
        )

    return json.dumps({"count": len(ordered), "p50_ms": pct(0.5), "p99_ms": pct(0.99)}).encode()


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            first, *lines = head.decode("latin-1").split("\r\n")
            length = 0
            for line in lines:
                if line.lower().startswith("content-length:"):
                    length = int(line.split(":", 1)[1])
            body = await reader.readexactly(length) if length else b""
            method, path, _ = first.split(" ", 2)
            answer = b""
            if method == "POST" and path == "/hook":
                LAGS.append(time.time() - json.loads(body)["timestamp"])
                status = b"204 No Content"
            elif path == "/stats":
                answer, status = stats(), b"200 OK"
            elif path == "/reset":
                LAGS.clear()
                status = b"204 No Content"
            else:
                status = b"404 Not Found"
            writer.write(
                b"HTTP/1.1 " + status + b"\r\ncontent-length: %d\r\n\r\n" % len(answer) + answer
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
        writer.close()  # the exosms side went away, or the sink is stopping


async def consume(url: str, stream: str) -> None:
    import nats

    nc = await nats.connect(url)
    js = nc.jetstream()
    while True:
        try:
            subject = stream.lower() + ".>"
            subscription = await js.pull_subscribe(subject, durable="bench", stream=stream)
            break
        except nats.js.errors.NotFoundError:
            await asyncio.sleep(0.2)
    while True:
        try:
            messages = await subscription.fetch(256, timeout=1)
            now = time.time()
            for message in messages:
                LAGS.append(now - json.loads(message.data)["timestamp"])
            await asyncio.gather(*(m.ack() for m in messages))
        except nats.errors.TimeoutError:
            continue
        except Exception as error:  # say so and go on: a consumer that died would count 0
            print(f"forward_sink: fetch failed: {error!r}", file=sys.stderr)
            await asyncio.sleep(0.2)


async def main() -> None:
    kind, port = sys.argv[1], int(sys.argv[2])
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    consumer = None
    if kind == "nats":
        consumer = asyncio.get_running_loop().create_task(consume(sys.argv[3], sys.argv[4]))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        async with server:
            await stop.wait()  # SIGTERM: leave quietly, open connections and all
    finally:
        if consumer is not None:
            consumer.cancel()
        if kind == "nats":  # the stream exosms made for this run goes with it
            import nats

            nc = await nats.connect(sys.argv[3])
            with contextlib.suppress(Exception):
                await nc.jetstream().delete_stream(sys.argv[4])
            await nc.close()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
