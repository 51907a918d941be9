"""Replying by hand over real HTTP: the preview's verdicts, the refusals (no Exotel
credentials, opted out, too long, no CSRF token, an unknown number) and a reply queued,
sent once through the fake Exotel, shown in the thread with who sent it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fake_exotel import FakeExotelProcess, fake_exotel
from inbox_support import csrf_of, inbox_server, login, send_sms
from servers import ServerProcess

pytestmark = pytest.mark.slow

CUSTOMER, SHOWN = "09811100022", "+919811100022"


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServerProcess, FakeExotelProcess]]:
    workdir = tmp_path_factory.mktemp("compose")
    with fake_exotel(workdir) as fake:
        proc = inbox_server(workdir, "--app", "exosms_test_apps:router", exotel=fake.settings())
        send_sms(proc.url, "h1", "Do you deliver on Sunday?", sender=CUSTOMER)
        send_sms(proc.url, "h2", "hello", sender="09811100033")
        send_sms(proc.url, "h3", "STOP", sender="09811100033")
        yield proc, fake
        proc.stop()


def preview(client: httpx.Client, number: str, body: str) -> dict[str, object]:
    token = csrf_of(client.get(f"/inbox/c/{number}").text)
    answer = client.post(f"/inbox/preview/{number}", data={"csrf": token, "body": body})
    assert answer.status_code == 200, answer.text
    found: dict[str, object] = answer.json()
    return found


def test_the_preview_says_encoding_parts_and_why_a_reply_would_be_held(
    site: tuple[ServerProcess, FakeExotelProcess],
) -> None:
    client = login(site[0].url)
    plain = preview(client, SHOWN, "Yes, we deliver on Sunday till 2 pm.")
    assert (plain["encoding"], plain["parts"], plain["sendable"]) == ("GSM-7", 1, True)
    assert plain["dlt_mode"] == "warn"  # no templates imported: sent, with a warning
    hindi = preview(client, SHOWN, "हाँ, रविवार को भी")
    assert (hindi["encoding"], hindi["parts"]) == ("UCS-2", 1)
    long = preview(client, SHOWN, "x" * 1200)
    assert long["parts"] == 8 and long["sendable"] is False
    assert (
        long["held"] == "The reply needs 8 SMS parts; at most 7 are sent ([reply] max_reply_parts)."
    )
    empty = preview(client, SHOWN, "   ")
    assert empty["held"] == "Write a reply first."
    opted = preview(client, "+919811100033", "Sorry to see you go")
    assert str(opted["held"]).startswith("The customer opted out (STOP)")


def test_a_reply_is_sent_once_and_shown_with_its_author_and_status(
    site: tuple[ServerProcess, FakeExotelProcess],
) -> None:
    proc, fake = site
    client = login(proc.url)
    before = client.get("/inbox/changes").json()
    token = csrf_of(client.get(f"/inbox/c/{SHOWN}").text)
    text = "Yes, we deliver on Sunday till 2 pm.\r\nThank you!"
    answer = client.post(f"/inbox/reply/{SHOWN}", data={"csrf": token, "body": text})
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/inbox/c/%2B919811100022#out")
    deadline = time.monotonic() + 10
    while not [m for m in fake.messages() if m["To"] == SHOWN]:
        assert time.monotonic() < deadline, "the reply never reached Exotel"
        time.sleep(0.05)
    sent = [m for m in fake.messages() if m["To"] == SHOWN]
    assert [m["Body"] for m in sent] == ["Yes, we deliver on Sunday till 2 pm.\nThank you!"]
    assert client.get("/inbox/changes").json()["marker"] != before["marker"]
    while "status-delivered" not in (thread := client.get(f"/inbox/fragments/c/{SHOWN}").text):
        assert time.monotonic() < deadline, thread
        time.sleep(0.05)
    assert "sent by hand by admin" in thread
    assert "Yes, we deliver on Sunday till 2 pm." in thread


def test_refusals_are_4xx_with_a_reason_and_send_nothing(
    site: tuple[ServerProcess, FakeExotelProcess],
) -> None:
    proc, fake = site
    client = login(proc.url)
    count = len(fake.messages())
    token = csrf_of(client.get(f"/inbox/c/{SHOWN}").text)
    no_csrf = client.post(f"/inbox/reply/{SHOWN}", data={"body": "hi"})
    assert no_csrf.status_code == 403
    unknown = client.post("/inbox/reply/+919000000000", data={"csrf": token, "body": "hi"})
    assert (unknown.status_code, unknown.text) == (404, "no messages from this number\n")
    opted = client.post("/inbox/reply/+919811100033", data={"csrf": token, "body": "Come back"})
    assert opted.status_code == 422
    assert "Not sent: The customer opted out (STOP)" in opted.text
    assert "Come back</textarea>" in opted.text  # what was written is kept
    anonymous = httpx.post(f"{proc.url}/inbox/reply/{SHOWN}", data={"body": "hi"})
    assert anonymous.status_code in (401, 403)
    assert len(fake.messages()) == count


def test_without_exotel_credentials_the_box_says_what_to_set(tmp_path: Path) -> None:
    proc = inbox_server(tmp_path, "--app", "exosms_test_apps:router")
    try:
        send_sms(proc.url, "n1", "hello there", sender=CUSTOMER)
        client = login(proc.url)
        page = client.get(f"/inbox/c/{SHOWN}").text
        expected = (
            "Replying from the inbox sends through Exotel&#39;s API: set [exotel] account_sid,"
            " [exotel] api_key, [exotel] api_token, [exotel] sender"
        )
        assert expected in page
        assert 'id="send" disabled' in page
        answer = client.post(f"/inbox/reply/{SHOWN}", data={"csrf": csrf_of(page), "body": "hi"})
        assert answer.status_code == 422
        assert "Not sent: Replying from the inbox sends through Exotel" in answer.text
    finally:
        proc.stop()
