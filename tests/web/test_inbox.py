"""The inbox and its JSON API over real HTTP, against a real `exosms serve`."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from inbox_support import API_TOKEN, PASSWORD, csrf_of, inbox_env, login, login_form, send_sms
from servers import ServerProcess, free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def inbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("inbox")
    proc = ServerProcess(
        workdir=workdir,
        port=free_port(),
        database_url=f"sqlite:///{workdir / 'exosms.db'}",
        args=["--app", "exosms_test_apps:router"],
        env=inbox_env(EXOSMS_INBOX__LOCKOUT_ATTEMPTS="3"),
    ).start()
    send_sms(proc.url, "x1", "ECHO <script>alert('x')</script>")
    send_sms(proc.url, "x2", '=HYPERLINK("http://evil","click")', sender="09811122233")
    send_sms(proc.url, "x3", "नमस्ते")
    send_sms(proc.url, "x4", "just chatting", sender="09811122233")
    yield proc
    proc.stop()


def test_the_inbox_and_api_are_off_without_a_password(tmp_path: Path) -> None:
    proc = ServerProcess(
        tmp_path,
        free_port(),
        f"sqlite:///{tmp_path / 'off.db'}",
        args=["--app", "exosms_test_apps:router"],
    ).start()
    try:
        for path in (
            "/inbox",
            "/inbox/login",
            "/inbox/search",
            "/api/messages",
            "/api/openapi.json",
        ):
            answer = httpx.get(proc.url + path)
            assert answer.status_code == 404, path
            assert "exosms password" in answer.text
        assert "inbox is off" in httpx.get(proc.url + "/").text
        assert send_sms(proc.url, "off1", "ECHO still answering") == "still answering"
    finally:
        proc.stop()


def test_pages_need_a_login_and_the_cookie_is_safe(inbox: ServerProcess) -> None:
    anonymous = httpx.Client(base_url=inbox.url, follow_redirects=False)
    answer = anonymous.get("/inbox/search?q=x")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/inbox/login?next=%2Finbox%2Fsearch%3Fq%3Dx"
    assert anonymous.get("/inbox/changes").status_code == 401
    client = httpx.Client(base_url=inbox.url, follow_redirects=False)
    token = login_form(client)
    answer = client.post(
        "/inbox/login", data={"csrf": token, "password": PASSWORD, "next": "/inbox/search?q=x"}
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/inbox/search?q=x"
    cookie = answer.headers["set-cookie"].lower()
    assert "exosms_session=" in cookie and "httponly" in cookie and "samesite=lax" in cookie
    assert "; secure" not in cookie  # plain http here: a Secure cookie would never come back
    page = client.get("/inbox")
    assert page.status_code == 200
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    # a tampered cookie is nobody
    forged = httpx.Client(base_url=inbox.url, follow_redirects=False)
    forged.cookies.set("exosms_session", client.cookies["exosms_session"][:-2] + "xx")
    assert forged.get("/inbox").status_code == 303
    # no open redirect after login
    other = httpx.Client(base_url=inbox.url, follow_redirects=False)
    answer = other.post(
        "/inbox/login",
        data={"csrf": login_form(other), "password": PASSWORD, "next": "https://evil.example/"},
    )
    assert answer.headers["location"] == "/inbox"


def test_wrong_passwords_lock_the_address_out(tmp_path: Path) -> None:
    proc = ServerProcess(
        tmp_path,
        free_port(),
        f"sqlite:///{tmp_path / 'lock.db'}",
        env=inbox_env(EXOSMS_INBOX__LOCKOUT_ATTEMPTS="3"),
    ).start()
    try:
        client = httpx.Client(base_url=proc.url, follow_redirects=False)
        for _ in range(3):
            answer = client.post(
                "/inbox/login", data={"csrf": login_form(client), "password": "guess guess guess"}
            )
            assert answer.status_code == 401
            assert "Wrong password." in answer.text
        answer = client.post(
            "/inbox/login", data={"csrf": login_form(client), "password": PASSWORD}
        )
        assert answer.status_code == 429  # even the right password, while locked out
        assert "Too many failed logins" in answer.text
        log = proc.log()
        assert "locked out" in log
        assert PASSWORD not in log and "guess guess" not in log and API_TOKEN not in log
    finally:
        proc.stop()


@pytest.mark.parametrize("workers", [1, 2])
def test_parallel_wrong_passwords_are_checked_at_most_the_limit(
    tmp_path: Path, workers: int
) -> None:
    proc = ServerProcess(
        tmp_path,
        free_port(),
        f"sqlite:///{tmp_path / 'lock.db'}",
        args=["--workers", str(workers)],
        env=inbox_env(EXOSMS_INBOX__LOCKOUT_ATTEMPTS="5"),
    ).start()
    try:
        client = httpx.Client(base_url=proc.url, follow_redirects=False)
        csrf = login_form(client)  # one login form, its cookie sent with every guess
        cookies = dict(client.cookies)

        async def guesses() -> list[int]:
            limits = httpx.Limits(max_connections=100)
            async with httpx.AsyncClient(
                base_url=proc.url, cookies=cookies, limits=limits, timeout=60
            ) as http:
                answers = await asyncio.gather(
                    *(
                        http.post("/inbox/login", data={"csrf": csrf, "password": f"guess {n}"})
                        for n in range(100)
                    )
                )
            return [a.status_code for a in answers]

        statuses = asyncio.run(guesses())
    finally:
        proc.stop()
    checked = proc.log().count("inbox login failed from")
    print(f"workers={workers}: {statuses.count(401)} checked, {statuses.count(429)} refused")
    assert statuses.count(401) == checked <= 5  # scrypt ran for at most the limit
    assert statuses.count(429) == 100 - checked


def test_behind_a_trusted_proxy_the_real_client_and_https_count(tmp_path: Path) -> None:
    proc = ServerProcess(
        tmp_path,
        free_port(),
        f"sqlite:///{tmp_path / 'proxy.db'}",
        env=inbox_env(
            EXOSMS_INBOX__LOCKOUT_ATTEMPTS="2", EXOSMS_AUTH__TRUSTED_PROXIES='["127.0.0.1/32"]'
        ),
    ).start()
    try:

        def attempt(client_ip: str, password: str) -> httpx.Response:
            headers = {"x-forwarded-for": client_ip, "x-forwarded-proto": "https"}
            form = httpx.get(f"{proc.url}/inbox/login", headers=headers)
            assert "; secure" in form.headers["set-cookie"].lower()
            # The browser saw https at the proxy, so it sends the Secure cookie back.
            cookie = form.headers["set-cookie"].split(";")[0]
            return httpx.post(
                f"{proc.url}/inbox/login",
                data={"csrf": csrf_of(form.text), "password": password},
                headers={**headers, "cookie": cookie},
            )

        for _ in range(2):
            assert attempt("203.0.113.5", "not it at all").status_code == 401
        assert attempt("203.0.113.5", PASSWORD).status_code == 429
        answer = attempt("203.0.113.6", PASSWORD)  # another customer of the same proxy
        assert answer.status_code == 303
        assert "; secure" in answer.headers["set-cookie"].lower()  # https at the proxy
        assert "203.0.113.5" in proc.log()
    finally:
        proc.stop()


def test_posts_without_the_csrf_token_are_refused(inbox: ServerProcess) -> None:
    client = login(inbox.url)
    for path, data in (
        ("/inbox/try", {"body": "ECHO hi"}),
        ("/inbox/logout", {}),
        ("/inbox/try", {"body": "ECHO hi", "csrf": "not-the-token"}),
    ):
        answer = client.post(path, data=data)
        assert answer.status_code == 403, path
        assert answer.text == "refused: missing or wrong CSRF token (reload the page)\n"
    token = csrf_of(client.get("/inbox").text)
    cross_site = client.post(
        "/inbox/try",
        data={"body": "ECHO hi", "csrf": token},
        headers={"origin": "https://evil.example"},
    )
    assert cross_site.status_code == 403
    # the login form is protected too
    fresh = httpx.Client(base_url=inbox.url)
    assert fresh.post("/inbox/login", data={"password": PASSWORD}).status_code == 403
    # and the session still works: nothing above logged it out
    assert client.get("/inbox").status_code == 200


def test_logout_ends_the_session_on_the_server(inbox: ServerProcess) -> None:
    client = login(inbox.url)
    stolen = client.cookies["exosms_session"]
    token = csrf_of(client.get("/inbox").text)
    answer = client.post("/inbox/logout", data={"csrf": token})
    assert answer.status_code == 303 and answer.headers["location"] == "/inbox/login"
    replay = httpx.Client(base_url=inbox.url, follow_redirects=False)
    replay.cookies.set("exosms_session", stolen)
    assert replay.get("/inbox").status_code == 303  # the old cookie no longer works


def test_customer_text_is_always_shown_as_text(inbox: ServerProcess) -> None:
    client = login(inbox.url)
    conversation = client.get("/inbox/c/%2B919876543210")
    message_id = json.loads(
        httpx.get(
            f"{inbox.url}/api/messages?q=script", headers={"authorization": f"Bearer {API_TOKEN}"}
        ).text
    )["messages"][0]["id"]
    for page in (
        client.get("/inbox"),
        conversation,
        client.get("/inbox/search?q=script"),
        client.get(f"/inbox/m/{message_id}"),
        client.get("/inbox/fragments/conversations"),
    ):
        assert page.status_code == 200
        assert "<script>alert" not in page.text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in conversation.text


def test_the_conversation_shows_replies_reasons_and_marks_read(inbox: ServerProcess) -> None:
    client = login(inbox.url)
    send_sms(inbox.url, "u1", "ECHO are you open?", sender="09700000001")
    unread = '<li class="conversation unread" data-sender="+919700000001">'
    listing = client.get("/inbox").text
    assert unread in listing
    assert listing.index(unread) < listing.index('data-sender="+919811122233"')  # newest first
    page = client.get("/inbox/c/%2B919700000001")
    assert page.status_code == 200
    assert unread in client.get("/inbox").text  # a GET changes nothing
    upto = re.search(r'name="upto" value="(\d+)"', page.text)
    assert upto is not None and 'data-mark-read="1"' in page.text
    marked = client.post(
        "/inbox/c/%2B919700000001", data={"csrf": csrf_of(page.text), "upto": upto[1]}
    )
    assert marked.status_code == 303
    assert unread not in client.get("/inbox").text  # read now, by the POST the page makes
    forged = client.post("/inbox/c/%2B919700000001", data={"upto": upto[1]})
    assert forged.status_code == 403
    send_sms(inbox.url, "u2", "ECHO hello?", sender="09700000001")
    assert unread in client.get("/inbox").text  # and unread again
    bad = client.post(
        "/inbox/c/%2B919700000001", data={"csrf": csrf_of(page.text), "upto": "\u0663"}
    )
    assert bad.status_code == 400 and "not a whole number" in bad.text
    thread = client.get("/inbox/c/%2B919811122233").text
    assert "just chatting" in thread and "No reply" in thread and "no rule matched" not in thread
    assert "rule nothing chose not to reply" in thread  # the default handler answered None
    mine = client.get("/inbox/c/%2B919876543210").text
    assert "rule <code>echo</code>" in mine and "GSM-7, 1 part" in mine
    assert "UCS-2" in mine  # the Hindi reply
    link = "/inbox/try?sender=%2B919876543210&amp;recipient=%2B918041000000"
    assert link in mine
    form = client.get(link.replace("&amp;", "&")).text
    assert 'name="sender" value="+919876543210"' in form
    assert client.get("/inbox/c/%2B910000000000").status_code == 404


def test_message_detail_shows_every_stored_field(inbox: ServerProcess) -> None:
    client = login(inbox.url)
    found = client.get("/inbox/search", params={"q": "chatting"}).text
    message_id = int(found.split('href="/inbox/m/')[1].split('"')[0])
    page = client.get(f"/inbox/m/{message_id}").text
    for field in (
        "sms_sid",
        "query",
        "date_raw",
        "fetch_count",
        "last_fetch_at",
        "handler_ms",
        "answered_at",
        "reply_encoding",
        "dlt_reason",
        "guard",
    ):
        assert f'<th scope="row">{field}</th>' in page
    assert "SmsSid=x4&amp;From=09811122233" in page  # the raw query string
    # Exotel's Date (India time) read as a moment, shown in the inbox's time zone too.
    assert re.search(
        r"exotel_date</th><td><code>[\d.]+</code> <span class=\"muted\">26 Nov 2026 10:00:00</span>",
        page,
    )
    assert client.get("/inbox/m/999999").status_code == 404
    assert client.get("/inbox/m/abc").status_code == 404


def test_search_filters_and_their_errors(inbox: ServerProcess) -> None:
    client = login(inbox.url)
    today = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 19800))

    def sids(**params: str) -> list[str]:
        page = client.get("/inbox/search", params=params)
        assert page.status_code == 200, page.text
        return [line.split("</td>")[0] for line in page.text.split('<td class="text">')[1::2]]

    assert sids(q="नमस्ते") == ["नमस्ते"]
    assert sids(number="98111") == [
        "just chatting",
        "=HYPERLINK(&#34;http://evil&#34;,&#34;click&#34;)",
    ]
    assert sids(outcome="no_reply", number="98111") == [
        "just chatting",
        "=HYPERLINK(&#34;http://evil&#34;,&#34;click&#34;)",
    ]
    assert sids(rule="echo", number="9876543210") == [
        "ECHO &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"
    ]
    assert sids(rule="echo", q="script") == sids(rule="echo", number="9876543210")
    assert len(sids(**{"from": today, "to": today})) >= 4
    assert sids(**{"to": "2020-01-01"}) == []
    for params, reason in (
        (
            {"from": "yesterday"},
            "from: &#39;yesterday&#39; is not a date (DD/MM/YYYY, or YYYY-MM-DD)",
        ),
        ({"outcome": "maybe"}, "outcome: &#39;maybe&#39; is not one of"),
        ({"before": "x"}, "before: &#39;x&#39; is not a whole number"),
    ):
        answer = client.get("/inbox/search", params=params)
        assert answer.status_code == 400 and reason in answer.text
        assert "Log out" in answer.text  # still the logged-in page, with its navigation


def test_export_is_streamed_and_safe_in_a_spreadsheet(inbox: ServerProcess) -> None:
    client = login(inbox.url)
    with client.stream("GET", "/inbox/export.csv") as answer:
        assert answer.status_code == 200
        assert answer.headers.get("transfer-encoding") == "chunked"
        assert "attachment" in answer.headers["content-disposition"]
        raw = answer.read()
    assert raw.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    bodies = {row["body"] for row in rows}
    assert '\'=HYPERLINK("http://evil","click")' in bodies  # a formula is text
    assert {"+919876543210", "+919811122233"} <= {row["sender"] for row in rows}  # numbers stay
    lines = client.get("/inbox/export.jsonl?number=98111").text.splitlines()
    assert [json.loads(line)["body"] for line in lines] == [
        "just chatting",
        '=HYPERLINK("http://evil","click")',  # JSON keeps the exact text
    ]
    assert client.get("/inbox/export.xlsx").status_code == 400


def test_export_of_many_rows_keeps_memory_flat(tmp_path: Path) -> None:
    db = tmp_path / "big.db"
    proc = ServerProcess(
        tmp_path, free_port(), f"sqlite:///{db}", env=inbox_env()
    ).start()  # migrates the file
    try:
        with sqlite3.connect(db) as conn:
            conn.executemany(
                "INSERT INTO messages (sms_sid, sender, sender_raw, recipient, recipient_raw, body,"
                " query, date_raw, received_at, method, state, reply, outcome)"
                " VALUES (?, ?, '', '56070', '', ?, '', '', ?, 'GET', 'done', ?, 'replied')",
                (
                    (
                        f"big{i}",
                        f"+9198{i % 5000:08d}",
                        f"message number {i} " + "x" * 100,
                        time.time() - i,
                        "y" * 120,
                    )
                    for i in range(60_000)
                ),
            )
        pid = proc.process.pid if proc.process else 0

        def rss_mb() -> float:
            fields = Path(f"/proc/{pid}/status").read_text().split("VmRSS:")[1].split()
            return int(fields[0]) / 1024

        client = login(proc.url)
        client.get("/inbox/export.jsonl?q=nothingmatches")  # warm up
        before = rss_mb()
        total = 0
        with client.stream("GET", "/inbox/export.csv") as answer:
            for chunk in answer.iter_bytes():
                total += len(chunk)
        grown = rss_mb() - before
        assert total > 60_000 * 220  # about 16 MB of CSV went out
        assert grown < 40, f"the server grew {grown:.0f} MB while exporting"
    finally:
        proc.stop()


def test_try_it_answers_without_storing(inbox: ServerProcess) -> None:
    client = login(inbox.url)
    count = len(client.get("/inbox/export.jsonl").text.splitlines())
    token = csrf_of(client.get("/inbox/try").text)
    page = client.post(
        "/inbox/try", data={"csrf": token, "sender": "9000000001", "body": "ECHO Your order ships"}
    ).text
    assert '<dd id="try-rule">echo</dd>' in page
    assert "Your order ships" in page and "GSM-7, 16 units, 1 part" in page
    page = client.post("/inbox/try", data={"csrf": token, "body": "STOP"}).text
    assert "opt_out" in page
    assert len(client.get("/inbox/export.jsonl").text.splitlines()) == count  # nothing stored


def test_overview_draws_charts(inbox: ServerProcess) -> None:
    client = login(inbox.url)
    page = client.get("/inbox/overview").text
    assert page.count("<svg") >= 5
    assert "<title>" in page and "ECHO" in page  # the top first word


def test_the_api_needs_the_bearer_token(inbox: ServerProcess) -> None:
    api = httpx.Client(base_url=inbox.url, headers={"authorization": f"Bearer {API_TOKEN}"})
    assert httpx.get(f"{inbox.url}/api/messages").status_code == 401
    wrong = httpx.get(f"{inbox.url}/api/messages", headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json() == {"error": "wrong bearer token"}
    assert wrong.headers["www-authenticate"] == "Bearer"
    page = api.get("/api/messages", params={"limit": 2}).json()
    assert len(page["messages"]) == 2 and page["next"]
    rest = api.get(page["next"]).json()
    assert len(rest["messages"]) == 2
    ids = [m["id"] for m in page["messages"] + rest["messages"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 4
    one = api.get(f"/api/messages/{ids[0]}").json()
    assert one["sms_sid"] and one["outcome"] in ("replied", "no_reply")
    conversations = api.get("/api/conversations").json()["conversations"]
    assert {"+919876543210", "+919811122233"} <= {c["sender"] for c in conversations}
    thread = api.get("/api/conversations/+919811122233").json()
    assert thread["messages"][0]["body"] == "just chatting"
    stats = api.get("/api/stats").json()
    assert stats["total"] >= 4 and len(stats["hours"]) == 168
    trial = api.post("/api/try", json={"body": "ECHO hello", "from": "9000000001"}).json()
    assert (trial["rule"], trial["reply"], trial["parts"]) == ("echo", "hello", 1)
    assert (
        api.post("/api/try", content=b"{", headers={"content-type": "application/json"}).status_code
        == 400
    )
    assert api.get("/api/messages", params={"limit": "0"}).json() == {
        "error": "limit: must be between 1 and 500"
    }
    assert api.get("/api/messages/12345678").status_code == 404
    # a logged-in browser may read the API, but not POST to it without the token
    browser = login(inbox.url)
    assert browser.get("/api/stats").status_code == 200
    assert browser.post("/api/try", json={"body": "x"}).status_code == 401


def test_two_workers_index_every_message_once(tmp_path: Path) -> None:
    """Each worker's SQLite indexer adds new messages to search and conversations; between
    them, every message is indexed exactly once."""
    from concurrent.futures import ThreadPoolExecutor

    proc = ServerProcess(
        tmp_path,
        free_port(),
        f"sqlite:///{tmp_path / 'workers.db'}",
        args=["--app", "exosms_test_apps:router", "--workers", "2"],
        env=inbox_env(),
    ).start()
    try:
        senders = [f"0970000{i:04d}" for i in range(12)]
        jobs = [(f"wk{i}", f"ECHO parcel {i}", senders[i % 12]) for i in range(240)]
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda job: send_sms(proc.url, *job), jobs))
        api = httpx.Client(base_url=proc.url, headers={"authorization": f"Bearer {API_TOKEN}"})
        lines = api.get("/api/export", params={"q": "parcel"}).text.splitlines()
        found = [json.loads(line)["sms_sid"] for line in lines]
        assert sorted(found) == sorted(sid for sid, _, _ in jobs)  # each once, none missing
        conversations = api.get("/api/conversations").json()["conversations"]
        assert len(conversations) == 12
        assert sum(c["message_count"] for c in conversations) == 240
    finally:
        proc.stop()


def test_the_inbox_on_postgresql(tmp_path: Path) -> None:
    """The same pages and API on PostgreSQL (its trigger keeps conversations, its GIN index
    serves text search), through a real server."""
    from pg import create_database, drop_database

    url = create_database()
    proc = ServerProcess(
        tmp_path, free_port(), url, args=["--app", "exosms_test_apps:router"], env=inbox_env()
    ).start()
    try:
        send_sms(proc.url, "pg1", "ECHO <b>refund</b> please", sender="09811100001")
        send_sms(proc.url, "pg2", "कीमत क्या है", sender="09811100002")
        send_sms(proc.url, "pg3", "ECHO refund again", sender="09811100001")
        client = login(proc.url)
        listing = client.get("/inbox").text
        assert listing.index('data-sender="+919811100001"') < listing.index(
            'data-sender="+919811100002"'
        )
        assert "&lt;b&gt;refund&lt;/b&gt;" in client.get("/inbox/c/%2B919811100001").text
        api = httpx.Client(base_url=proc.url, headers={"authorization": f"Bearer {API_TOKEN}"})
        assert [m["sms_sid"] for m in api.get("/api/messages?q=refu").json()["messages"]] == [
            "pg3",
            "pg1",
        ]
        assert [m["sms_sid"] for m in api.get("/api/messages?q=कीमत").json()["messages"]] == ["pg2"]
        assert [
            m["sms_sid"] for m in api.get("/api/messages?number=100002").json()["messages"]
        ] == ["pg2"]
        conversations = api.get("/api/conversations").json()["conversations"]
        assert [c["message_count"] for c in conversations] == [2, 1]
        assert api.get("/api/stats").json()["total"] == 3
        assert "<svg" in client.get("/inbox/overview").text
    finally:
        proc.stop()
        drop_database(url)


def test_a_sender_with_any_characters_can_be_opened_and_marked_read(inbox: ServerProcess) -> None:
    client = login(inbox.url)
    send_sms(inbox.url, "slash1", "ECHO hi", sender="ACME/IN?x#1")
    page = client.get("/inbox/c/ACME%2FIN%3Fx%231")
    assert page.status_code == 200 and "ACME/IN?x#1" in page.text
    assert 'action="/inbox/c/ACME/IN%3Fx%231"' in page.text  # the form reaches it too
    api = httpx.Client(base_url=inbox.url, headers={"authorization": f"Bearer {API_TOKEN}"})
    thread = api.get("/api/conversations/ACME%2FIN%3Fx%231")
    assert thread.status_code == 200
    assert thread.json()["conversation"]["sender"] == "ACME/IN?x#1"
    assert thread.json()["conversation"]["unread"] is True
    marked = api.post("/api/conversations/ACME%2FIN%3Fx%231")
    assert marked.status_code == 200, marked.text
    assert api.get("/api/conversations/ACME%2FIN%3Fx%231").json()["conversation"]["unread"] is False
    bad = api.post(
        "/api/conversations/ACME%2FIN%3Fx%231",
        json={"upto": 2**63},
    )
    assert bad.status_code == 400 and "upto" in bad.json()["error"]


def test_no_redirect_is_built_from_the_host_header(inbox: ServerProcess) -> None:
    client = login(inbox.url)
    for path in ("/inbox/search/", "//evil.example/inbox/search/", "/inbox/overview/?q=1"):
        answer = client.get(path, headers={"host": "evil.example"})
        location = answer.headers.get("location", "/")
        assert location.startswith("/") and not location.startswith("//"), (path, location)
        assert "://" not in location, (path, location)
    moved = client.get("/inbox/search/?q=order", headers={"host": "evil.example"})
    assert (moved.status_code, moved.headers["location"]) == (307, "/inbox/search?q=order")
    missing = client.get("/no/such/page/")
    assert (missing.status_code, missing.text) == (404, "not found\n")


def test_big_ids_and_nul_bytes_are_a_400_not_a_database_error(inbox: ServerProcess) -> None:
    api = httpx.Client(base_url=inbox.url, headers={"authorization": f"Bearer {API_TOKEN}"})
    assert api.get("/api/messages", params={"before": str(2**62)}).status_code == 200
    assert api.get("/api/messages", params={"before": str(2**63 - 1)}).status_code == 200
    for params in ({"before": str(2**63)}, {"before": "\u0663"}, {"number": "\x00"}):
        answer = api.get("/api/messages", params=params)
        assert answer.status_code == 400, (params, answer.text)
    export = api.get("/api/export", params={"rule": "\x00"})
    assert export.status_code == 400 and "NUL" in export.json()["error"]
    assert api.get("/api/conversations/a%00b").status_code == 400
    assert " ERROR " not in inbox.log()


def test_guesses_spread_over_many_addresses_are_bounded_per_account(tmp_path: Path) -> None:
    proc = ServerProcess(
        tmp_path,
        free_port(),
        f"sqlite:///{tmp_path / 'account.db'}",
        env=inbox_env(
            EXOSMS_INBOX__LOCKOUT_ATTEMPTS="2",
            EXOSMS_INBOX__LOCKOUT_ACCOUNT_ATTEMPTS="6",
            EXOSMS_AUTH__TRUSTED_PROXIES='["127.0.0.1/32"]',
        ),
    ).start()
    try:
        client = httpx.Client(base_url=proc.url, follow_redirects=False)
        csrf = login_form(client)
        cookies = dict(client.cookies)

        async def guesses() -> list[int]:
            async with httpx.AsyncClient(base_url=proc.url, cookies=cookies, timeout=60) as http:
                answers = await asyncio.gather(
                    *(
                        http.post(
                            "/inbox/login",
                            data={"csrf": csrf, "password": f"guess {n}"},
                            headers={"x-forwarded-for": f"198.51.100.{n}"},
                        )
                        for n in range(30)  # one guess from each of 30 addresses
                    )
                )
            return [a.status_code for a in answers]

        statuses = asyncio.run(guesses())
    finally:
        proc.stop()
    assert statuses.count(401) == proc.log().count("inbox login failed from") == 6
    assert statuses.count(429) == 24
