"""exosms.exotel.Client against the fake Exotel, over real HTTP."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from fake_exotel import FakeExotelProcess, fake_exotel

from exosms.dlt import Template, TemplateRegistry
from exosms.exotel.client import (
    Ambiguous,
    AuthenticationError,
    Client,
    DltRefused,
    ExotelError,
    InvalidRequest,
    OutgoingSms,
    RateLimited,
    Unavailable,
)

TOKEN = "token"


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeExotelProcess]:
    with fake_exotel(tmp_path_factory.mktemp("fake")) as process:
        yield process


@pytest.fixture(autouse=True)
def _clean(fake: FakeExotelProcess) -> None:
    fake.reset()


def client(fake: FakeExotelProcess, **options: object) -> Client:
    defaults: dict[str, object] = {"base_url": fake.url, "sender": "ACMEIN", "backoff": 0.05}
    return Client("acme", "key", TOKEN, **{**defaults, **options})  # type: ignore[arg-type]


T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def test_send_returns_exotel_sid_and_chooses_the_encoding(fake: FakeExotelProcess) -> None:
    async def go() -> tuple[str, str]:
        async with client(fake) as exotel:
            plain = await exotel.send("+919052161119", "Your order 12 has shipped")
            hindi = await exotel.send("+919052161119", "आपका ऑर्डर भेज दिया गया है")
            return plain.sid, hindi.status

    sid, status = run(go())
    assert len(sid) == 32 and status == "queued"
    sent = fake.messages()
    assert [m["EncodingType"] for m in sent] == ["plain", "unicode"]
    assert sent[0]["From"] == "ACMEIN" and sent[0]["SmsType"] == "transactional"


def test_bulk_of_250_is_split_into_calls_of_100(fake: FakeExotelProcess) -> None:
    messages = [OutgoingSms(f"+9190000{n:05d}", f"Hello {n}") for n in range(250)]

    async def go() -> list[str]:
        async with client(fake) as exotel:
            return [r.to for r in await exotel.send_bulk(messages)]

    assert run(go()) == [m.to for m in messages]
    assert len(fake.messages()) == 250


def test_429_then_success_honours_retry_after(fake: FakeExotelProcess) -> None:
    fake.fail(status=429, times=2, retry_after=0.2)

    async def go() -> str:
        async with client(fake) as exotel:
            return (await exotel.send("+919052161119", "hi")).status

    started = time.monotonic()
    assert run(go()) == "queued"
    assert time.monotonic() - started >= 0.4  # two Retry-After waits
    assert len(fake.messages()) == 1


def test_a_503_storm_backs_off_then_gives_up(fake: FakeExotelProcess) -> None:
    fake.fail(status=503, times=3)

    async def go(retries: int) -> str:
        async with client(fake, max_retries=retries) as exotel:
            return (await exotel.send("+919052161119", "hi")).status

    assert run(go(5)) == "queued"
    fake.fail(status=503, times=10)
    with pytest.raises(Unavailable) as error:
        run(go(2))
    assert error.value.status == 503
    fake.reset()
    fake.fail(status=429, times=10)
    with pytest.raises(RateLimited):
        run(go(1))


def test_wrong_credentials_are_not_retried_and_the_token_never_shows(
    fake: FakeExotelProcess, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    async def go() -> None:
        async with Client(
            "acme", "key", "not-the-token-s3cret", base_url=fake.url, sender="X"
        ) as c:
            await c.send("+919052161119", "hi")

    with pytest.raises(AuthenticationError) as error:
        run(go())
    assert error.value.status == 401
    assert "not-the-token-s3cret" not in str(error.value)
    assert "not-the-token-s3cret" not in caplog.text
    assert fake.messages() == []


def test_dlt_enforce_refuses_before_sending_and_fills_the_template_id(
    fake: FakeExotelProcess,
) -> None:
    registry = TemplateRegistry(
        [Template("1107161234567890123", "Your order {#numeric#} has shipped. -ACME")]
    )

    async def go(body: str) -> str:
        async with client(fake, registry=registry, dlt_entity_id="1101234567890123456") as c:
            return (await c.send("+919052161119", body)).status

    assert run(go("Your order 12 has shipped. -ACME")) == "queued"
    sent = fake.messages()[0]
    assert sent["DltTemplateId"] == "1107161234567890123"
    assert sent["DltEntityId"] == "1101234567890123456"
    with pytest.raises(DltRefused, match="differs at character"):
        run(go("Your order 12 has shipped -ACME"))
    assert len(fake.messages()) == 1


def test_the_fake_applies_the_dlt_rule_itself(tmp_path: Path) -> None:
    import subprocess
    import sys

    db = f"sqlite:///{tmp_path / 'reg.db'}"
    toml = tmp_path / "t.toml"
    toml.write_text('[[template]]\nid = "1107161234567890123"\ncontent = "OTP {#numeric#} -ACME"\n')
    subprocess.run(
        [sys.executable, "-m", "exosms", "dlt", "import", str(toml), "--database", db],
        check=True,
        capture_output=True,
    )
    with fake_exotel(tmp_path, db) as strict:

        async def go(body: str, template: str | None) -> tuple[str, str, int]:
            async with Client(
                "acme", "key", TOKEN, base_url=strict.url, sender="ACMEIN", dlt_mode="off"
            ) as c:
                sent = await c.send("+919052161119", body, template_id=template)
                later = await c.details(sent.sid)
                return sent.status, later["Status"], later["DetailedStatusCode"]

        # As Exotel does: a mismatch is accepted, then reported failed (support 3000112255).
        assert run(go("OTP 1234 -ACME", "1107161234567890123")) == ("queued", "sent", 20005)
        assert run(go("OTP 12a4 -ACME", "1107161234567890123")) == ("queued", "failed", 23185)
        assert run(go("OTP 1234 -ACME", None)) == ("queued", "failed", 23185)
        with pytest.raises(InvalidRequest, match="is not registered"):
            run(go("OTP 1234 -ACME", "1107000000000000000"))


def test_the_fake_answers_as_public_clients_expect(fake: FakeExotelProcess) -> None:
    import httpx

    auth = ("key", TOKEN)
    form = {"From": "ACMEIN", "To": "09052161119", "Body": "hello"}
    xml = httpx.post(f"{fake.url}/v1/Accounts/acme/Sms/send", data=form, auth=auth)
    assert xml.headers["content-type"].startswith("application/xml")
    assert "<TwilioResponse><SMSMessage><Sid>" in xml.text
    answer = httpx.post(f"{fake.url}/v1/Accounts/acme/Sms/send.json", data=form, auth=auth)
    entry = answer.json()["SMSMessage"]
    # Every field public clients read directly (ExotelPy fails with KeyError: 'Price').
    for name in (
        "Sid",
        "AccountSid",
        "From",
        "To",
        "DateCreated",
        "DateUpdated",
        "DateSent",
        "Body",
        "Direction",
        "Uri",
        "ApiVersion",
        "Price",
        "Status",
    ):
        assert name in entry, name
    for casing in ("SMS", "Sms"):  # Exotel's docs / the PyPI SDK
        details = httpx.get(
            f"{fake.url}/v1/Accounts/acme/{casing}/Messages/{entry['Sid']}.json", auth=auth
        )
        assert details.json()["SMSMessage"]["Status"] == "sent"
    wrong = httpx.post(f"{fake.url}/v1/Accounts/acme/Sms/send", data=form, auth=("key", "x"))
    assert wrong.status_code == 401


def test_the_sync_wrapper_for_scripts(fake: FakeExotelProcess) -> None:
    from exosms.exotel.client import SyncClient

    with SyncClient("acme", "key", TOKEN, base_url=fake.url, sender="ACMEIN") as exotel:
        assert exotel.send("+919052161119", "hello").status == "queued"
        assert (
            len(
                exotel.send_bulk(
                    [OutgoingSms("+919052161119", "a"), OutgoingSms("+919052161118", "b")]
                )
            )
            == 2
        )
    assert len(fake.messages()) == 3


def test_the_pypi_exotel_sdk_works_against_the_fake(fake: FakeExotelProcess) -> None:
    from exotel import Exotel  # PyPI exotel 0.1.5: logs in as sid:token, calls Sms/Messages

    sdk = Exotel("acme", TOKEN, baseurl=fake.url + "/")
    sent = sdk.sms("ACMEIN", "09052161119", "Your order has shipped. -ACME")
    assert sent.status_code == 200
    sid = sent.json()["SMSMessage"]["Sid"]
    hindi = sdk.sms("ACMEIN", "09052161119", "आपका ऑर्डर भेज दिया गया है", encoding_type="unicode")
    assert hindi.json()["SMSMessage"]["Body"] == "आपका ऑर्डर भेज दिया गया है"
    details = sdk.sms_details(sid)
    assert details.json()["SMSMessage"]["Status"] == "sent"
    wrong = Exotel("acme", "not-the-token", baseurl=fake.url + "/")
    assert wrong.sms("ACMEIN", "09052161119", "x").status_code == 401


def test_bulk_shapes_and_a_partly_refused_bulk(fake: FakeExotelProcess) -> None:
    import httpx

    auth = ("key", TOKEN)
    url = f"{fake.url}/v1/Accounts/acme/Sms/bulksend.json"
    # The outer From is used where a message has none; Message[i] (singular) works too.
    dynamic = httpx.post(
        url,
        data={
            "From": "ACMEIN",
            "EncodingType": "plain",
            "Message[0][To]": "09052161119",
            "Message[0][Body]": "one",
            "Message[1][To]": "09052161118",
            "Message[1][Body]": "two",
            "Message[1][From]": "OTHERS",
        },
        auth=auth,
    ).json()["SMSMessages"]
    assert [e["SMSMessage"]["From"] for e in dynamic] == ["ACMEIN", "OTHERS"]
    static = httpx.post(
        url, data={"From": "ACMEIN", "Body": "same", "To": "09052161119,09052161118"}, auth=auth
    ).json()["SMSMessages"]
    assert [e["SMSMessage"]["To"] for e in static] == ["09052161119", "09052161118"]

    async def partly() -> list[tuple[bool, str | None]]:
        async with Client("acme", "key", TOKEN, base_url=fake.url, sender="ACMEIN") as c:
            sent = await c.send_bulk(
                [OutgoingSms("+919052161119", "fine"), OutgoingSms("+919052161118", "x" * 2001)]
            )
            return [(r.is_sent, r.error) for r in sent]

    with pytest.raises(InvalidRequest, match="2001 characters"):
        run(partly())  # refused here, before any POST: nothing half-sent

    form = {
        "Messages[0][To]": "1",
        "Messages[0][Body]": "ok",
        "Messages[1][To]": "2",
        "From": "ACMEIN",
    }
    answer = httpx.post(url, data=form, auth=auth).json()["SMSMessages"]
    from exosms.exotel.client import _bulk_result

    results = [_bulk_result(to, entry) for to, entry in zip(("1", "2"), answer, strict=True)]
    assert results[0].is_sent and not results[1].is_sent
    assert results[1].error is not None and "Missing parameter Body" in results[1].error
    assert _bulk_result("3", None).error == "no answer for this message in the bulk answer"


def test_what_exotel_cannot_have_seen_is_told_from_what_it_may_have_sent() -> None:
    """Over real sockets: no connection is retried (nothing was written); a connection that
    closes or goes silent after the request is ambiguous (it may have been accepted)."""
    requests: list[bytes] = []

    async def go() -> tuple[ExotelError, ExotelError, ExotelError]:
        async def closes(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            requests.append(await reader.readuntil(b"\r\n\r\n"))
            writer.close()

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            requests.append(await reader.readuntil(b"\r\n\r\n"))
            await asyncio.sleep(30)

        closing = await asyncio.start_server(closes, "127.0.0.1", 0)
        hanging = await asyncio.start_server(silent, "127.0.0.1", 0)
        with socket.socket() as free:
            free.bind(("127.0.0.1", 0))
            refused_port = free.getsockname()[1]
        failures: list[ExotelError] = []
        for port in (refused_port, closing.sockets[0].getsockname()[1]):
            async with Client(
                "acme",
                "key",
                TOKEN,
                base_url=f"http://127.0.0.1:{port}",
                sender="ACMEIN",
                max_retries=1,
                backoff=0.01,
            ) as c:
                with pytest.raises(ExotelError) as error:
                    await c.send("+919052161119", "hi")
                failures.append(error.value)
        port = hanging.sockets[0].getsockname()[1]
        async with Client(
            "acme", "key", TOKEN, base_url=f"http://127.0.0.1:{port}", sender="ACMEIN", timeout=0.3
        ) as c:
            with pytest.raises(ExotelError) as error:
                await c.send("+919052161119", "hi")
            failures.append(error.value)
        closing.close()
        hanging.close()
        return failures[0], failures[1], failures[2]

    refused, closed, silent = run(go())
    assert isinstance(refused, Unavailable) and refused.is_retryable
    assert "could not reach Exotel" in str(refused)
    for lost in (closed, silent):
        assert isinstance(lost, Ambiguous) and lost.is_ambiguous and not lost.is_retryable
        assert "no answer from Exotel after the request" in str(lost)
    assert len(requests) == 2  # each POST written once: an ambiguous one is never retried
    assert all(b"Authorization: Basic " in r and TOKEN.encode() not in r for r in requests)


def test_the_proxy_of_the_environment_is_used_unless_no_proxy_names_exotel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lines: list[bytes] = []
    answer = b'{"SMSMessage": {"Sid": "s1", "Status": "queued"}}'

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines.append(head.split(b"\r\n")[0])
        length = int(
            next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")).split(
                b":"
            )[1]
        )
        await reader.readexactly(length)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
        writer.write(b"Content-Length: %d\r\n\r\n%s" % (len(answer), answer))
        await writer.drain()
        writer.close()

    async def go() -> str:
        server = await asyncio.start_server(proxy, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
        async with Client("acme", "key", TOKEN, base_url="http://exotel.invalid", sender="X") as c:
            sid = (await c.send("+919052161119", "hi")).sid
        monkeypatch.setenv("NO_PROXY", "exotel.invalid")
        async with Client(
            "acme", "key", TOKEN, base_url="http://exotel.invalid", sender="X", max_retries=0
        ) as c:
            with pytest.raises(Unavailable, match="could not reach Exotel"):
                await c.send("+919052161119", "hi")  # straight to a host that does not exist
        server.close()
        return sid

    assert run(go()) == "s1"
    assert lines == [b"POST http://exotel.invalid/v1/Accounts/acme/Sms/send.json HTTP/1.1"]
