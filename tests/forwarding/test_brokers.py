"""Forwarding to the real brokers on this machine: NATS JetStream, RabbitMQ, Redis Streams.

Each test starts a real `exosms serve`, sends SMS over HTTP, and reads the events back with
the broker's own client, as a business's consumer would."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from brokers import NATS_URL, RABBITMQ_URL, REDIS_URL, require
from receiver import Receiver
from servers import ServerProcess, free_port, server_factory

from exosms.forwarding.envelope import Envelope
from exosms.forwarding.nats import NatsDestination

pytestmark = pytest.mark.slow
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    with server_factory(tmp_path) as make:
        yield make


def send(proc: ServerProcess, body: str, sender: str = "9052161119") -> str:
    sid = uuid.uuid4().hex
    params = {"SmsSid": sid, "From": sender, "To": "56070", "Body": body}
    assert httpx.get(f"{proc.url}/exotel/sms", params=params, timeout=10).status_code == 200
    return sid


def destination(name: str, kind: str, url: str, **extra: object) -> str:
    lines = "".join(f"{k} = {json.dumps(v)}\n" for k, v in extra.items())
    return f'[[forwarding.destinations]]\nname = "{name}"\nkind = "{kind}"\nurl = "{url}"\n{lines}'


FORWARDING = "[forwarding]\npoll_seconds = 0.05\n"


def test_jetstream_gets_every_event_with_its_id_and_drops_a_duplicate(
    make_server: Callable[..., ServerProcess],
) -> None:
    require("nats")
    import nats

    tag = uuid.uuid4().hex[:8]
    stream, subject = f"EXOSMS_{tag}", f"t{tag}.{{type}}"
    proc = make_server(
        FORWARDING + destination("js", "nats", NATS_URL, subject=subject, stream=stream)
    )
    sids = [send(proc, f"ECHO js {n}") for n in range(3)]

    async def read(count: int) -> list[Any]:
        nc = await nats.connect(NATS_URL)
        try:
            js = nc.jetstream()
            deadline = time.monotonic() + 20
            while True:  # the stream is made by exosms on its first delivery
                try:
                    info = await js.stream_info(stream)
                    if info.state.messages >= count or time.monotonic() > deadline:
                        break
                except nats.js.errors.NotFoundError:
                    pass
                await asyncio.sleep(0.05)
            consumer = await js.pull_subscribe(f"t{tag}.>", durable=f"c{tag}", stream=stream)
            messages = await consumer.fetch(count, timeout=5)
            return [(m.headers or {}).get("Nats-Msg-Id") for m in messages] + [
                json.loads(m.data)["type"] for m in messages
            ]
        finally:
            await nc.close()

    found = asyncio.run(read(6))
    ids, kinds = found[:6], found[6:]
    assert ids == [f"{sid}:{step}" for sid in sids for step in ("received", "answered")]
    assert kinds == ["sms.received", "sms.answered"] * 3

    async def publish_twice() -> int:
        js_destination = NatsDestination("js", NATS_URL, subject, stream, 5.0)
        event = Envelope(f"{sids[0]}:answered", "sms.answered", "+919052161119", 0.0, b"{}")
        try:
            await js_destination.deliver(event)  # a resend after a lost ack: the same id
        finally:
            await js_destination.aclose()
        nc = await nats.connect(NATS_URL)
        try:
            info = await nc.jetstream().stream_info(stream)
            await nc.jetstream().delete_stream(stream)
            return int(info.state.messages)
        finally:
            await nc.close()

    assert asyncio.run(publish_twice()) == 6  # JetStream deduplicated it by Nats-Msg-Id


def test_rabbitmq_gets_persistent_confirmed_messages_with_the_event_id(
    make_server: Callable[..., ServerProcess],
) -> None:
    require("rabbitmq")
    import aio_pika

    tag = uuid.uuid4().hex[:8]
    exchange_name, queue_name = f"exosms-{tag}", f"q-{tag}"

    async def bind() -> None:  # the business's queue, bound before the events flow
        connection = await aio_pika.connect(RABBITMQ_URL)
        async with connection:
            channel = await connection.channel()
            exchange = await channel.declare_exchange(
                exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
            )
            queue = await channel.declare_queue(queue_name, durable=True)
            await queue.bind(exchange, routing_key="sms.#")

    asyncio.run(bind())
    proc = make_server(
        FORWARDING + destination("mq", "rabbitmq", RABBITMQ_URL, exchange=exchange_name)
    )
    sid = send(proc, "ECHO rabbit")

    async def read() -> list[tuple[str | None, str | None, int | None]]:
        connection = await aio_pika.connect(RABBITMQ_URL)
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(queue_name, durable=True)
            found: list[tuple[str | None, str | None, int | None]] = []
            deadline = time.monotonic() + 20
            while len(found) < 2 and time.monotonic() < deadline:
                message = await queue.get(fail=False, timeout=5)
                if message is None:
                    await asyncio.sleep(0.05)
                    continue
                await message.ack()
                mode = message.delivery_mode
                found.append((message.message_id, message.type, int(mode) if mode else None))
            await queue.delete(if_unused=False, if_empty=False)
            exchange = await channel.get_exchange(exchange_name)
            await exchange.delete()
            return found

    assert asyncio.run(read()) == [
        (f"{sid}:received", "sms.received", 2),
        (f"{sid}:answered", "sms.answered", 2),
    ]


def test_redis_stream_entries_and_a_dead_broker_does_not_hold_the_others(
    make_server: Callable[..., ServerProcess],
) -> None:
    require("redis")
    import redis

    key = f"exosms:test:{uuid.uuid4().hex[:8]}"
    port = free_port()
    receiver = Receiver(port, SECRET).start()
    try:
        config = (
            FORWARDING
            + destination("stream", "redis", REDIS_URL, stream=key, max_len=1000)
            # Nothing listens there: this destination fails and backs off, alone.
            + destination("gone", "nats", f"nats://127.0.0.1:{free_port()}", timeout_seconds=1)
            + destination("crm", "webhook", f"http://127.0.0.1:{port}/hook", secrets=[SECRET])
        )
        proc = make_server(config)
        sids = [send(proc, f"ECHO redis {n}") for n in range(4)]
        receiver.wait_for(8)
        client = redis.Redis.from_url(REDIS_URL)
        deadline = time.monotonic() + 20
        while client.xlen(key) < 8 and time.monotonic() < deadline:
            time.sleep(0.05)
        entries: list[Any] = list(client.xrange(key) or [])
        client.delete(key)
        ids = [fields[b"id"].decode() for _, fields in entries]
        assert ids == [f"{sid}:{step}" for sid in sids for step in ("received", "answered")]
        event = json.loads(entries[-1][1][b"event"])
        assert event["data"]["message"]["reply"] == "redis 3"
        status = httpx.get(f"{proc.url}/healthz", timeout=5)
        assert status.status_code == 200
    finally:
        receiver.stop()
