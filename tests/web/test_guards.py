"""Guard rails over real HTTP: who may call, opt-out, reply caps, loops, slow clients."""

from __future__ import annotations

import json
import select
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from servers import ServerProcess, server_factory

TOKEN = "s3cr3t-T0ken-that-must-never-be-logged"
STRICT = {  # the defaults, spelled out so that the test does not depend on them
    "EXOSMS_GUARDS__REPLIES_PER_10MIN": "5",
    "EXOSMS_GUARDS__REPLIES_PER_DAY": "50",
    "EXOSMS_GUARDS__LOOP_WINDOW_SECONDS": "300",
    "EXOSMS_GUARDS__REPLY_TO_NON_NUMBERS": "false",
}


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    with server_factory(tmp_path, env=STRICT) as make:
        yield make


def sms(body: str, sender: str = "9052161119", **extra: str) -> dict[str, str]:
    return {"SmsSid": uuid.uuid4().hex, "From": sender, "To": "56070", "Body": body, **extra}


def stored(proc: ServerProcess) -> list[dict[str, object]]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "exosms",
            "messages",
            "--json",
            "--limit",
            "1000",
            "--database",
            proc.database_url,
        ],
        capture_output=True,
        text=True,
        cwd=proc.workdir,
    )
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_token_in_path_or_query_and_never_in_logs(
    make_server: Callable[..., ServerProcess],
) -> None:
    proc = make_server(f'[auth]\ntoken = "{TOKEN}"\n')
    base = f"{proc.url}/exotel/sms"
    assert httpx.get(f"{base}/{TOKEN}", params=sms("ECHO hi")).text == "hi"
    assert httpx.get(base, params=sms("ECHO q", token=TOKEN)).text == "q"
    for url, params, reason in [
        (base, sms("ECHO x"), "missing token\n"),
        (f"{base}/wrong", sms("ECHO x"), "wrong token\n"),
        (base, sms("ECHO x", token="wrong"), "wrong token\n"),
        (f"{base}/{TOKEN[:-1]}", sms("ECHO x"), "wrong token\n"),
    ]:
        answer = httpx.get(url, params=params)
        assert (answer.status_code, answer.text) == (401, reason)
        assert answer.headers["content-type"] == "text/plain"
        assert httpx.head(url, params=params).status_code == 401
    rows = stored(proc)
    assert len(rows) == 2  # refused requests store nothing
    assert all(TOKEN not in json.dumps(row) for row in rows)
    assert any("token=REDACTED" in str(row["query"]) for row in rows)
    health = httpx.get(f"{proc.url}/healthz")
    assert (health.text, health.headers["x-exosms-refused-requests"]) == ("ok\n", "8")
    # Where to point Exotel: the path's shape with the token, never the token itself.
    index = httpx.get(f"{proc.url}/").text
    assert f"{proc.url}/exotel/sms/<your [auth] token>" in index
    assert f"{proc.url}/exotel/webhook/<your [auth] token>" in index
    assert TOKEN not in index
    listed = subprocess.run(
        [sys.executable, "-m", "exosms", "messages", "--database", proc.database_url],
        capture_output=True,
        text=True,
        cwd=proc.workdir,
    )
    proc.stop()
    log = proc.log()
    assert "refused GET status=401 reason=wrong token" in log
    assert TOKEN not in log
    assert TOKEN not in listed.stdout + listed.stderr


def test_basic_auth(make_server: Callable[..., ServerProcess]) -> None:
    proc = make_server('[auth]\nbasic_user = "exotel"\nbasic_password = "pa55word"\n')
    url = f"{proc.url}/exotel/sms"
    assert httpx.get(url, params=sms("ECHO ok"), auth=("exotel", "pa55word")).text == "ok"
    wrong = httpx.get(url, params=sms("ECHO no"), auth=("exotel", "nope"))
    assert (wrong.status_code, wrong.text) == (401, "wrong user or password\n")
    missing = httpx.get(url, params=sms("ECHO no"))
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == 'Basic realm="exosms"'
    proc.stop()
    assert "pa55word" not in proc.log()


def test_a_repeat_of_an_answered_sms_sid_is_refused_without_credentials(
    make_server: Callable[..., ServerProcess],
) -> None:
    # A repeat is answered from memory, before the app runs (web.protocol): the same checks
    # hold there, so a caller without the token cannot read an answer given to Exotel.
    proc = make_server(
        f'[auth]\ntoken = "{TOKEN}"\nbasic_user = "exotel"\nbasic_password = "pa55word"\n'
        'allow_ips = ["10.0.0.0/8"]\ntrusted_proxies = ["127.0.0.1/32"]\n'
    )
    base = f"{proc.url}/exotel/sms"
    params = sms("ECHO private")
    good = {"X-Forwarded-For": "10.1.2.3"}
    auth = ("exotel", "pa55word")
    with httpx.Client(timeout=10) as client:  # one kept-alive connection, as Exotel's
        assert client.get(f"{base}/{TOKEN}", params=params, headers=good, auth=auth).text == (
            "private"
        )
        for url, headers, login, status in [
            (base, good, auth, 401),
            (f"{base}/wrong", good, auth, 401),
            (f"{base}/{TOKEN}", good, None, 401),
            (f"{base}/{TOKEN}", good, ("exotel", "nope"), 401),
            (f"{base}/{TOKEN}", {"X-Forwarded-For": "192.0.2.7"}, auth, 403),
        ]:
            for method in ("HEAD", "GET"):
                answer = client.request(method, url, params=params, headers=headers, auth=login)
                assert answer.status_code == status, (url, headers, login, method)
                assert b"private" not in answer.content
        again = client.head(f"{base}/{TOKEN}", params=params, headers=good, auth=auth)
        assert (again.status_code, again.headers["content-length"]) == (200, "7")
    health = httpx.get(f"{proc.url}/healthz", headers=good)
    assert health.headers["x-exosms-refused-requests"] == "10"  # each counted once


def test_ip_allowlist_with_and_without_a_trusted_proxy(
    make_server: Callable[..., ServerProcess],
) -> None:
    closed = make_server('[auth]\nallow_ips = ["10.0.0.0/8"]\n')
    url = f"{closed.url}/exotel/sms"
    answer = httpx.get(url, params=sms("ECHO x"))
    assert (answer.status_code, answer.text) == (403, "address not allowed\n")
    # Without a trusted proxy, X-Forwarded-For is anyone's word: ignored.
    spoofed = httpx.get(url, params=sms("ECHO x"), headers={"X-Forwarded-For": "10.1.2.3"})
    assert spoofed.status_code == 403

    proxied = make_server(
        '[auth]\nallow_ips = ["10.0.0.0/8"]\ntrusted_proxies = ["127.0.0.1/32"]\n'
    )
    url = f"{proxied.url}/exotel/sms"
    ok = httpx.get(url, params=sms("ECHO via proxy"), headers={"X-Forwarded-For": "10.1.2.3"})
    assert (ok.status_code, ok.text) == (200, "via proxy")
    outside = httpx.get(url, params=sms("ECHO x"), headers={"X-Forwarded-For": "192.0.2.7"})
    assert outside.status_code == 403
    # A client that prepends its own "10.x" hop does not fool the rightmost-untrusted rule.
    chained = httpx.get(
        url, params=sms("ECHO x"), headers={"X-Forwarded-For": "10.9.9.9, 192.0.2.7"}
    )
    assert chained.status_code == 403


def test_stop_confirms_once_then_silence_then_start(
    make_server: Callable[..., ServerProcess],
) -> None:
    proc = make_server(EXOSMS_GUARDS__REPLIES_PER_10MIN="10")  # confirmations count as replies
    url = f"{proc.url}/exotel/sms"

    def say(body: str) -> str:
        return httpx.get(url, params=sms(body)).text

    assert say("ECHO before") == "before"
    assert say("STOP") == "You will get no more SMS from this number. Send START to opt back in."
    assert say("ECHO during") == ""
    assert say("stop") == ""  # already out: no second confirmation
    assert say("ECHO still quiet") == ""
    assert say("Start") == "You will get SMS from this number again. Send STOP to opt out."
    assert say("ECHO after") == "after"
    rows = {r["body"]: r for r in stored(proc)}
    assert rows["ECHO during"]["guard"] == "opted_out"
    assert rows["ECHO during"]["outcome"] == "suppressed"
    assert rows["STOP"]["outcome"] == "opted_out"
    # The opt-out is per number: the same customer still hears from another Exotel number.
    other = httpx.get(url, params={**sms("STOP"), "To": "08088919888"})
    assert other.text.startswith("You will get no more SMS")
    assert say("ECHO on 56070") == "on 56070"


def test_optouts_cli(make_server: Callable[..., ServerProcess]) -> None:
    proc = make_server()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "exosms", "optouts", *args, "--database", proc.database_url],
            capture_output=True,
            text=True,
            cwd=proc.workdir,
        )

    def cli(*args: str) -> str:
        done = run(*args)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert cli("add", "09052161119") == (
        "+919052161119 opted out from every Exotel number: nothing more is sent to them there"
    )
    assert httpx.get(f"{proc.url}/exotel/sms", params=sms("ECHO x")).text == ""
    assert "+919052161119  from all numbers  since " in cli("list")
    assert " IST  (cli)" in cli("list")  # in the timezone setting, as the inbox shows it
    assert cli("add", "9052161119", "--to", "56070") == (
        "+919052161119 was already opted out from every Exotel number: nothing changed"
    )
    # Opting back in from every number also removes the per-number opt-outs.
    assert cli("remove", "9052161119") == (
        "+919052161119: removed the opt-out from every Exotel number; they get replies again"
    )
    assert httpx.get(f"{proc.url}/exotel/sms", params=sms("ECHO y")).text == "y"
    cli("add", "9052161119", "--to", "56070")
    cli("add", "9052161119", "--to", "08088919888")
    assert cli("remove", "9052161119", "--to", "08088919888") == (
        "+919052161119: removed the opt-out from +918088919888; still opted out from 56070"
    )
    assert httpx.get(f"{proc.url}/exotel/sms", params=sms("ECHO z")).text == ""  # to 56070
    assert cli("remove", "9052161119") == (
        "+919052161119: removed the opt-out from 56070; they get replies again"
    )
    assert cli("remove", "9052161119") == "+919052161119 was not opted out: nothing changed"
    for bad, where in ((("add", "hello"), "SENDER"), (("add", "9052161119", "--to", "x1"), "--to")):
        refused = run(*bad)
        assert refused.returncode == 2
        assert f"Invalid value for {where}:" in refused.stderr
        assert "is not a" in refused.stderr
    assert cli("list") == "no opt-outs"


def test_a_burst_from_one_sender_gets_at_most_the_cap(
    make_server: Callable[..., ServerProcess],
) -> None:
    proc = make_server()
    url = f"{proc.url}/exotel/sms"
    answers = [httpx.get(url, params=sms(f"ECHO n{n}")).text for n in range(20)]
    assert [a for a in answers if a] == ["n0", "n1", "n2", "n3", "n4"]
    assert httpx.get(url, params=sms("ECHO other", sender="9812345678")).text == "other"
    rows = stored(proc)
    assert sum(1 for r in rows if r["guard"] == "rate_limited") == 15
    assert len(rows) == 21  # every message is stored


def test_a_ping_pong_with_another_auto_responder_stops(
    make_server: Callable[..., ServerProcess],
) -> None:
    proc = make_server()
    url = f"{proc.url}/exotel/sms"
    robot = "9123456780"
    ours = httpx.get(url, params=sms("ECHO Sorry, I did not understand", sender=robot)).text
    replies = [ours]
    for _ in range(10):  # the other machine answers whatever we sent with the same text
        ours = httpx.get(url, params=sms("ECHO Sorry, I did not understand", sender=robot)).text
        replies.append(ours)
    assert replies[0] == "Sorry, I did not understand"
    assert replies[1:] == [""] * 10
    assert {r["guard"] for r in stored(proc) if not r["reply"]} == {"loop"}


def test_machines_get_no_replies(make_server: Callable[..., ServerProcess]) -> None:
    proc = make_server()
    url = f"{proc.url}/exotel/sms"
    assert httpx.get(url, params=sms("ECHO hi", sender="VM-ACMEIN")).text == ""
    assert httpx.get(url, params=sms("ECHO hi", sender="56767")).text == ""
    assert {r["guard"] for r in stored(proc)} == {"sender_type"}


def test_slow_clients_do_not_delay_others(make_server: Callable[..., ServerProcess]) -> None:
    proc = make_server(EXOSMS_REQUEST_TIMEOUT="3")
    url = f"{proc.url}/exotel/sms"
    httpx.get(url, params=sms("ECHO warm up"))
    slow = []
    for _ in range(100):  # bounded, loopback only
        conn = socket.create_connection(("127.0.0.1", proc.port))
        conn.sendall(b"GET /exotel/sms?SmsSid=slow&From=9052161119 HTTP/1.1\r\nHost: x\r\n")
        slow.append(conn)
    try:
        # Answered while every slow connection is still open (none is cut before 3 s): the
        # slow clients hold sockets, not the workers that answer.
        for n in range(5):
            answer = httpx.get(url, params=sms(f"ECHO s{n}", sender=f"91000000{n:02d}"))
            assert answer.text == f"s{n}"
        for conn in slow:
            readable, _, _ = select.select([conn], [], [], 0)
            assert not readable, "a slow connection was answered before the deadline"
        # Past request_timeout the server answers 408 and closes every slow connection.
        for conn in slow:
            conn.settimeout(5)
            cut = conn.recv(200)
            assert cut.startswith(b"HTTP/1.1 408 "), cut
            assert conn.recv(100) == b""
    finally:
        for conn in slow:
            conn.close()


def test_init_makes_a_token_and_prints_the_url(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "exosms", "init", "--public-url", "https://sms.acme.in"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "exosms.toml").read_text()
    token = text.split('token = "')[1].split('"')[0]
    assert len(token) >= 32
    assert f"https://sms.acme.in/exotel/sms/{token}" in done.stdout
    assert (tmp_path / "exosms.toml").stat().st_mode & 0o077 == 0
    again = subprocess.run(
        [sys.executable, "-m", "exosms", "init"], capture_output=True, text=True, cwd=tmp_path
    )
    assert again.returncode == 1
    assert "already has [auth] token" in again.stderr
