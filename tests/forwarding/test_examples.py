"""The examples a business copies: the signed-webhook receiver and the JetStream consumer,
run against a real exosms."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from brokers import NATS_URL, require
from servers import ServerProcess, free_port, server_factory

from exosms.forwarding.envelope import Envelope
from exosms.forwarding.webhook import WebhookDestination

pytestmark = pytest.mark.slow
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    with server_factory(tmp_path) as make:
        yield make


@pytest.fixture
def receiver() -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "forward_receiver.py"), str(port)],
        env={**os.environ, "EXOSMS_WEBHOOK_SECRET": SECRET},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert "listening" in proc.stdout.readline()  # it is ready once it says so
    yield f"http://127.0.0.1:{port}/hook", proc
    proc.kill()
    proc.wait(10)


def test_the_example_receiver_takes_signed_events_and_refuses_forgeries(
    make_server: Callable[..., ServerProcess], receiver: tuple[str, subprocess.Popen[str]]
) -> None:
    url, proc = receiver
    server = make_server(
        "[forwarding]\npoll_seconds = 0.05\n[[forwarding.destinations]]\n"
        f'name = "crm"\nkind = "webhook"\nurl = "{url}"\nsecrets = ["{SECRET}"]\n'
    )
    sid = uuid.uuid4().hex
    params = {"SmsSid": sid, "From": "9052161119", "To": "56070", "Body": "ECHO hi"}
    assert httpx.get(f"{server.url}/exotel/sms", params=params, timeout=10).status_code == 200
    assert proc.stdout is not None
    printed = [json.loads(proc.stdout.readline()) for _ in range(2)]  # blocks until printed
    assert printed == [
        {"id": f"{sid}:received", "type": "sms.received"},
        {"id": f"{sid}:answered", "type": "sms.answered"},
    ]
    body = json.dumps({"id": "forged", "type": "sms.received"}).encode()
    event = Envelope("forged", "sms.received", "+919052161119", 0.0, body)
    wrong = WebhookDestination("x", url, ["whsec_" + "B" * 32], 5).headers(event)
    assert httpx.post(url, content=body, headers=wrong).status_code == 401
    assert httpx.post(url, content=body).status_code == 401  # unsigned
    right = WebhookDestination("x", url, [SECRET], 5)
    stale = right.headers(event, datetime.now(UTC) - timedelta(minutes=10))
    assert httpx.post(url, content=body, headers=stale).status_code == 401  # a replayed capture
    assert httpx.post(url, content=body, headers=right.headers(event)).status_code == 204
    assert httpx.post(url, content=body, headers=right.headers(event)).text == "duplicate"


def test_the_jetstream_consumer_example_reads_the_events(
    make_server: Callable[..., ServerProcess],
) -> None:
    require("nats")
    import nats

    sys.path.insert(0, str(EXAMPLES))
    from jetstream_consumer import consume

    stream = "EXOSMS_EXAMPLE"

    async def clear() -> None:
        nc = await nats.connect(NATS_URL)
        try:
            await nc.jetstream().delete_stream(stream)
        except nats.js.errors.NotFoundError:
            pass
        finally:
            await nc.close()

    asyncio.run(clear())
    server = make_server(
        "[forwarding]\npoll_seconds = 0.05\n[[forwarding.destinations]]\n"
        f'name = "js"\nkind = "nats"\nurl = "{NATS_URL}"\nstream = "{stream}"\n'
    )
    params = {"SmsSid": uuid.uuid4().hex, "From": "9052161119", "To": "56070", "Body": "ECHO js"}
    assert httpx.get(f"{server.url}/exotel/sms", params=params, timeout=10).status_code == 200
    try:
        assert asyncio.run(asyncio.wait_for(consume(NATS_URL, stream, limit=2), 30)) == 2
    finally:
        asyncio.run(clear())
