"""Read exosms's events from NATS JetStream with a durable consumer, and acknowledge each.

    pip install 'exosms[nats]'
    python examples/jetstream_consumer.py nats://127.0.0.1:4222 EXOSMS

With the destination ``kind = "nats"``, ``subject = "exosms.{type}"``, ``stream = "EXOSMS"``.
A durable consumer remembers where it stopped: restart it and it goes on from there.
JetStream already dropped duplicates published within its window (``Nats-Msg-Id`` is the
event id); deduplicate on ``id`` too if you replay.
"""

from __future__ import annotations

import asyncio
import json
import sys

import nats


async def consume(url: str, stream: str, durable: str = "exosms-example", limit: int = 0) -> int:
    """Print each event as it comes, acknowledging it; stop after ``limit`` (0: never)."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        while True:  # exosms makes the stream with its first event: wait for it
            try:
                subscription = await js.pull_subscribe("exosms.>", durable=durable, stream=stream)
                break
            except nats.js.errors.NotFoundError:
                await asyncio.sleep(0.5)
        count = 0
        while limit == 0 or count < limit:
            try:
                messages = await subscription.fetch(10, timeout=5)
            except nats.errors.TimeoutError:
                continue
            for message in messages:
                event = json.loads(message.data)
                print(json.dumps({"id": event["id"], "type": event["type"]}), flush=True)
                await message.ack()
                count += 1
        return count
    finally:
        await nc.close()


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else "nats://127.0.0.1:4222"
    name = sys.argv[2] if len(sys.argv) > 2 else "EXOSMS"
    asyncio.run(consume(target, name))
