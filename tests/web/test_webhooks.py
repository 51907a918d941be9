"""Inbound webhooks, the outbox, and delivery status, with a real server and the fake Exotel."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fake_exotel import FakeExotelProcess, fake_exotel
from servers import ServerProcess, free_port
from waiting import wait_for

Setup = Callable[..., tuple[ServerProcess, FakeExotelProcess]]

TEMPLATES = """
[[template]]
id = "1107161234567890123"
content = "Order {#numeric#} is out for delivery. -ACME"
"""


def exosms(
    proc_or_db: str, cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "exosms", *args, "--database", proc_or_db],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def outbox(proc: ServerProcess) -> list[dict[str, object]]:
    import sqlite3

    path = proc.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM outbox ORDER BY id")]


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    cleanup: list[object] = []
    fake_cm = fake_exotel(tmp_path)
    fake = fake_cm.__enter__()

    def make(configured: bool = True, **extra: str) -> tuple[ServerProcess, FakeExotelProcess]:
        db = f"sqlite:///{tmp_path / 'exosms.db'}"
        (tmp_path / "t.toml").write_text(TEMPLATES)
        exosms(db, tmp_path, "dlt", "import", "t.toml")
        port = free_port()
        env = {"EXOSMS_FALLBACK_REPLY": ""}
        if configured:
            env |= {**fake.settings(), "EXOSMS_EXOTEL__PUBLIC_URL": f"http://127.0.0.1:{port}"}
        env.update(extra)
        proc = ServerProcess(
            tmp_path, port, db, args=["--app", "exosms_test_apps:router"], env=env
        ).start()
        cleanup.append(proc)
        return proc, fake

    yield make
    for proc in cleanup:
        proc.stop()  # type: ignore[attr-defined]
    fake_cm.__exit__(None, None, None)


def test_a_webhook_sms_gets_its_reply_through_the_api_with_the_template_id(setup: Setup) -> None:
    proc, fake = setup()
    sid = fake.webhook(f"{proc.url}/exotel/webhook", "ECHO Order 12 is out for delivery. -ACME")
    wait_for(lambda: len(fake.messages()) == 1)
    sent = fake.messages()[0]
    assert sent["Body"] == "Order 12 is out for delivery. -ACME"
    assert sent["DltTemplateId"] == "1107161234567890123"
    assert sent["To"] == "+919052161119"
    assert sent["CustomField"].startswith("exosms-")
    # Exotel's status callback comes back and is recorded beside our own estimate.
    wait_for(lambda: outbox(proc)[0]["delivery_status"] == "sent")
    row = outbox(proc)[0]
    assert (row["message_sid"], row["status"], row["exotel_sid"]) == (sid, "sent", sent["Sid"])
    assert (row["sms_units"], row["parts"], row["detailed_status_code"]) == (1, 1, "20005")
    listed = exosms(proc.database_url, proc.workdir, "outbox")
    assert "delivery=sent 20005 1 units (we counted 1)" in listed.stdout


def test_form_shaped_webhooks_and_retries_are_answered_once(setup: Setup) -> None:
    proc, fake = setup()
    form = {
        "SmsSid": "form-1",
        "From": "09052161119",
        "To": "56070",
        "Body": "ECHO Order 7 is out for delivery. -ACME",
        "DateCreated": "2025-01-15T10:30:00+05:30",
        "AccountSid": "acme",
    }
    for _ in range(3):  # Exotel retrying the same webhook
        answer = httpx.post(f"{proc.url}/exotel/webhook", data=form)
        assert (answer.status_code, answer.text) == (200, "ok\n")
    wait_for(lambda: len(fake.messages()) >= 1)
    # A later message, sent after the first: once it is out, a second copy of the first
    # would be too (the worker sends in order), so this is the event to wait for.
    fake.webhook(f"{proc.url}/exotel/webhook", "ECHO Order 8 is out for delivery. -ACME")
    wait_for(lambda: any(m["Body"].startswith("Order 8") for m in fake.messages()))
    assert len(fake.messages()) == 2
    assert len(outbox(proc)) == 2
    assert proc.calls("form-1") == ["form-1"]


def test_bad_webhooks_get_a_one_line_reason(setup: Setup) -> None:
    proc, _ = setup()
    url = f"{proc.url}/exotel/webhook"
    cases = [
        (
            httpx.post(url, content=b"{not json", headers={"content-type": "application/json"}),
            400,
            "not valid JSON\n",
        ),
        (
            httpx.post(url, json={"Sender": "9052161119", "MessageBody": "hi"}),
            400,
            "missing SmsSid\n",
        ),
        (httpx.post(url, json={"SmsSid": "x1", "MessageBody": "hi"}), 400, "missing From\n"),
        (
            httpx.post(url, content=b"x", headers={"content-type": "text/xml"}),
            415,
            "unsupported content type 'text/xml': send JSON or a form\n",
        ),
    ]
    for answer, status, text in cases:
        assert (answer.status_code, answer.text) == (status, text)
    # Answered before the router, and still only where and how the router would.
    assert httpx.get(url).status_code == 405
    assert httpx.get(url).headers["allow"] == "POST"
    slash = httpx.post(f"{url}/", data={"SmsSid": "x2"})
    assert (slash.status_code, slash.headers["location"]) == (307, "/exotel/webhook")
    assert httpx.post(f"{url}/a/b", data={"SmsSid": "x2"}).status_code == 404
    assert httpx.delete(f"{proc.url}/exotel/status").status_code == 405


def test_a_reply_stored_before_a_crash_is_sent_once_after_restart(setup: Setup) -> None:
    proc, fake = setup(configured=False)  # no API credentials: the reply waits in the outbox
    fake.webhook(f"{proc.url}/exotel/webhook", "ECHO Order 9 is out for delivery. -ACME")
    assert [r["status"] for r in outbox(proc)] == ["pending"]
    proc.kill()
    restarted, _ = setup(configured=True)
    wait_for(lambda: len(fake.messages()) == 1)
    # Later polls send nothing more: a message queued now is sent at the next one, and the
    # first is still sent exactly once when it is.
    fake.webhook(f"{restarted.url}/exotel/webhook", "ECHO Order 8 is out for delivery. -ACME")
    wait_for(lambda: any(m["Body"].startswith("Order 8") for m in fake.messages()))
    assert len(fake.messages()) == 2
    assert [r["status"] for r in outbox(restarted)] == ["sent", "sent"]


def test_status_callbacks_for_unknown_sids_are_kept(setup: Setup) -> None:
    proc, _ = setup()
    answer = httpx.post(
        f"{proc.url}/exotel/status",
        data={
            "SmsSid": "nobody-knows",
            "Status": "failed-dnd",
            "SmsUnits": "1",
            "DetailedStatusCode": "23082",
        },
    )
    assert (answer.status_code, answer.text) == (200, "ok\n")
    import sqlite3

    with sqlite3.connect(proc.database_url.removeprefix("sqlite:///")) as conn:
        rows = conn.execute(
            "SELECT exotel_sid, status, outbox_id, payload FROM delivery_events"
        ).fetchall()
    assert rows[0][:3] == ("nobody-knows", "failed_dnd", None)
    assert json.loads(rows[0][3])["DetailedStatusCode"] == "23082"


def test_exosms_send_works_and_explains_a_dlt_refusal(setup: Setup, tmp_path: Path) -> None:
    proc, fake = setup(configured=False)  # only the command sends: no race with a worker
    env = fake.settings()
    done = exosms(
        proc.database_url,
        tmp_path,
        "send",
        "--to",
        "9052161119",
        "--body",
        "Order 5 is out for delivery. -ACME",
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "sent as #1: Exotel SmsSid" in done.stdout  # through the outbox, like every send
    assert outbox(proc)[0]["status"] == "sent"
    assert fake.messages()[-1]["DltTemplateId"] == "1107161234567890123"
    refused = exosms(
        proc.database_url,
        tmp_path,
        "send",
        "--to",
        "9052161119",
        "--body",
        "Order 5 is out for delivery -ACME",
        env=env,
    )
    assert refused.returncode == 1
    assert (
        "not sent: no template matches; closest is 1107161234567890123: differs at character 28: expected '.', got ' '"
        in refused.stderr
    )
    missing = exosms(proc.database_url, tmp_path, "send", "--to", "1", "--body", "x")
    assert "set [exotel] account_sid, api_key and api_token" in missing.stderr


def test_a_late_applet_reply_arrives_through_the_api_after_the_fallback(setup: Setup) -> None:
    proc, fake = setup()  # reply_deadline 2 s; the handler takes 2.5 s
    params = {"SmsSid": "late-1", "From": "9052161119", "To": "56070", "Body": "LATEORDER 2.5"}
    started = time.monotonic()
    answer = httpx.get(f"{proc.url}/exotel/sms", params=params, timeout=10)
    assert time.monotonic() - started < 2.5
    assert (answer.status_code, answer.text) == (200, "")  # the fallback: no reply
    wait_for(lambda: len(fake.messages()) == 1)
    sent = fake.messages()[0]
    assert (sent["Body"], sent["To"]) == ("Order 77 is out for delivery. -ACME", "+919052161119")
    assert sent["DltTemplateId"] == "1107161234567890123"
    listed = exosms(proc.database_url, proc.workdir, "messages", "--limit", "5")
    assert "fallback_timeout" in listed.stdout
    assert "late reply, sent by API: 'Order 77 is out for delivery. -ACME'" in listed.stdout


def test_a_lost_answer_is_posted_once_and_settled_by_its_callback(setup: Setup) -> None:
    proc, fake = setup(EXOSMS_EXOTEL__TIMEOUT_SECONDS="1")
    fake.fail(drop_answer=True)  # Exotel accepts the SMS; its answer never comes back
    fake.webhook(f"{proc.url}/exotel/webhook", "ECHO Order 3 is out for delivery. -ACME")
    wait_for(lambda: "no answer from Exotel after the request" in proc.log())
    wait_for(lambda: outbox(proc)[0]["delivery_status"] == "sent")
    row = outbox(proc)[0]
    assert row["status"] == "sent"  # settled by the signed callback, not by a second POST
    assert row["exotel_sid"] == fake.messages()[0]["Sid"]
    assert len(fake.messages()) == 1


def test_a_lost_answer_and_a_lost_callback_is_held_for_a_person(setup: Setup) -> None:
    proc, fake = setup(EXOSMS_EXOTEL__TIMEOUT_SECONDS="1", EXOSMS_EXOTEL__UNKNOWN_WAIT_SECONDS="1")
    fake.fail(drop_answer=True, lose_callback=True)
    fake.webhook(f"{proc.url}/exotel/webhook", "ECHO Order 4 is out for delivery. -ACME")
    wait_for(lambda: outbox(proc)[0]["status"] == "held")
    assert len(fake.messages()) == 1  # held, never resent on its own
    listed = exosms(proc.database_url, proc.workdir, "outbox")
    assert "#1 held" in listed.stdout
    assert "exosms outbox resend 1" in listed.stdout
    assert "no status callback came: held for a person" in listed.stdout
    again = exosms(proc.database_url, proc.workdir, "outbox", "resend", "1")
    assert (again.returncode, again.stdout) == (0, "#1 queued to send again\n")
    wait_for(lambda: outbox(proc)[0]["delivery_status"] == "sent")
    assert len(fake.messages()) == 2  # the person chose to send it again
    nothing = exosms(proc.database_url, proc.workdir, "outbox", "give-up", "1")
    assert nothing.returncode == 1 and "no such SMS held" in nothing.stderr


def test_the_resend_policy_sends_again_when_no_callback_settles_it(setup: Setup) -> None:
    proc, fake = setup(
        EXOSMS_EXOTEL__TIMEOUT_SECONDS="1",
        EXOSMS_EXOTEL__UNKNOWN_WAIT_SECONDS="1",
        EXOSMS_EXOTEL__UNKNOWN_POLICY="resend",
    )
    fake.fail(drop_answer=True, lose_callback=True)
    fake.webhook(f"{proc.url}/exotel/webhook", "ECHO Order 6 is out for delivery. -ACME")
    wait_for(lambda: outbox(proc)[0]["delivery_status"] == "sent")
    assert len(fake.messages()) == 2


def test_forged_replayed_and_backward_callbacks_change_nothing(setup: Setup) -> None:
    proc, fake = setup()
    fake.webhook(f"{proc.url}/exotel/webhook", "ECHO Order 8 is out for delivery. -ACME")
    wait_for(lambda: outbox(proc)[0]["delivery_status"] == "sent")
    before = outbox(proc)[0]
    status = f"{proc.url}/exotel/status"
    real = fake.messages()[0]
    forged = [
        {"SmsSid": "x", "Status": "failed", "CustomField": "exosms-1"},
        {"SmsSid": "x", "Status": "failed", "CustomField": "exosms-1-0123456789abcdef"},
        {"SmsSid": "x", "Status": "failed", "CustomField": real["CustomField"][:-1] + "0"},
    ]
    for fields in forged:
        answer = httpx.post(status, data=fields)
        assert (answer.status_code, answer.text) == (
            403,
            "CustomField is not signed by this server\n",
        )
    # Exotel's own callback again, and an older state after the final one: no change.
    for state in ("sent", "queued", "failed"):
        fields = {"SmsSid": real["Sid"], "Status": state, "CustomField": real["CustomField"]}
        assert httpx.post(status, data=fields).status_code == 200
        assert httpx.get(status, params=fields).status_code == 200  # GET callbacks too
    assert outbox(proc)[0] == before


def test_callbacks_reach_a_server_behind_basic_auth(setup: Setup) -> None:
    proc, _ = setup(EXOSMS_AUTH__BASIC_USER="exotel", EXOSMS_AUTH__BASIC_PASSWORD="s3cret")
    answer = httpx.post(
        f"{proc.url}/exotel/webhook",
        json={
            "SmsSid": "ba-1",
            "Sender": "9052161119",
            "ReceivedOn": "56070",
            "MessageBody": "ECHO Order 2 is out for delivery. -ACME",
        },
        auth=("exotel", "s3cret"),
    )
    assert answer.status_code == 200
    # Exotel's status callback carries no credentials, and is still recorded.
    wait_for(lambda: outbox(proc)[0]["delivery_status"] == "sent")


def test_a_lost_callback_is_reconciled_from_exotel_s_details(setup: Setup) -> None:
    proc, fake = setup(EXOSMS_EXOTEL__RECONCILE_AFTER_SECONDS="1")
    fake.fail(lose_callback=True)
    fake.webhook(f"{proc.url}/exotel/webhook", "ECHO Order 11 is out for delivery. -ACME")
    wait_for(lambda: outbox(proc)[0]["delivery_status"] == "sent")
    row = outbox(proc)[0]
    assert (row["detailed_status_code"], row["sms_units"]) == ("20005", 1)
    assert row["checked_at"] is not None
    assert "reconciled: sent" in proc.log()


def test_malformed_webhooks_and_callbacks_get_a_4xx_with_a_reason(setup: Setup) -> None:
    proc, _ = setup()
    json_type = {"content-type": "application/json"}
    deep = b'{"SmsSid": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"
    cases = [
        ("webhook", deep, json_type, 400, "JSON nested deeper than 8\n"),
        (
            "webhook",
            b'{"SmsSid": "s", "Sender": "9052161119", "MessageBody": "\\udc80"}',
            json_type,
            400,
            "'MessageBody' is not valid Unicode\n",
        ),
        (
            "webhook",
            b'{"SmsSid": "s\\u0000", "Sender": "9052161119"}',
            json_type,
            400,
            "'SmsSid' contains a NUL character\n",
        ),
        ("webhook", b"SmsSid=s&From=1&Body=a%00b", {}, 400, "'Body' contains a NUL character\n"),
        (
            "status",
            b"SmsSid=s&Sta%00tus=sent",
            {},
            400,
            "'a field name' contains a NUL character\n",
        ),
        (
            "webhook",
            b"SmsSid=%FF%FE&From=1",
            {},
            400,
            "SmsSid must be 1 to 128 printable ASCII characters\n",
        ),
        ("webhook", b"x" * 70_000, {}, 413, "body longer than 65536 bytes\n"),
        (
            "status",
            b"SmsSid=s&CustomField=exosms-%C2%B2-00&SmsUnits=%C2%B2",
            {},
            403,
            "CustomField is not signed by this server\n",
        ),
        ("status", b"SmsSid=s&SmsUnits=%C2%B2&Status=" + b"9" * 5000, {}, 200, "ok\n"),
        ("status", deep, json_type, 400, "JSON nested deeper than 8\n"),
    ]
    for path, body, headers, status, reason in cases:
        answer = httpx.post(f"{proc.url}/exotel/{path}", content=body, headers=headers)
        assert (answer.status_code, answer.text) == (status, reason), (path, body[:60])
    # A status callback by GET is held to the same rules as by POST.
    nul = httpx.get(f"{proc.url}/exotel/status", params={"SmsSid": "s", "Status": "a\x00b"})
    assert (nul.status_code, nul.text) == (400, "'Status' contains a NUL character\n")
    assert "Traceback" not in proc.log()


def test_fuzzed_webhook_and_status_bodies_never_get_a_5xx(setup: Setup) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    proc, _ = setup(configured=False)
    http = httpx.Client(timeout=10)
    field = st.sampled_from(
        [
            "SmsSid",
            "From",
            "To",
            "Body",
            "Sender",
            "MessageBody",
            "ReceivedOn",
            "CustomField",
            "SmsUnits",
            "Status",
            "DateSent",
        ]
    )
    text = st.text(max_size=40) | st.binary(max_size=40).map(lambda b: b.decode("latin-1"))
    form = st.dictionaries(field, text, max_size=6)
    seen: list[int] = []

    @settings(
        max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    @given(
        path=st.sampled_from(["webhook", "status"]),
        kind=st.sampled_from(["json", "form", "raw"]),
        data=form,
        raw=st.binary(max_size=200),
    )
    def probe(path: str, kind: str, data: dict[str, str], raw: bytes) -> None:
        url = f"{proc.url}/exotel/{path}"
        if kind == "json":
            answer = http.post(
                url, content=json.dumps(data).encode(), headers={"content-type": "application/json"}
            )
        elif kind == "form":
            answer = http.post(url, data=data)
        else:
            answer = http.post(url, content=raw, headers={"content-type": "application/json"})
        seen.append(answer.status_code)
        assert answer.status_code < 500, (path, kind, data, raw, answer.text)

    probe()
    http.close()
    assert len(seen) >= 150 and "Traceback" not in proc.log()


def test_a_webhook_cut_off_mid_body_is_dropped_without_a_trace(setup: Setup) -> None:
    import socket

    proc, _ = setup()
    body = b"SmsSid=cut1&From=09052161119&To=08030752400&Body=ECHO%20hi"
    head = (
        b"POST /exotel/webhook HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: %d\r\n\r\n" % (len(body) + 100)
    )
    with socket.create_connection(("127.0.0.1", proc.port), timeout=10) as sock:
        sock.sendall(head + body)
        sock.shutdown(socket.SHUT_WR)  # the client gives up before the rest of its body
        assert sock.recv(4096) == b""  # nobody to answer: the server closes, says nothing
    assert "Traceback" not in proc.log() and "cut1" not in proc.log()
    assert outbox(proc) == []
