"""Notifications to people through Apprise, for real: a JSON receiver over HTTP
(``json://``) and an SMTP server (aiosmtpd, ``mailto://``) on loopback. Messages that got no
reply and those a ``notify = true`` rule answered arrive, batched, with a link to the
conversation; a conversation assigned to a person goes to that person only; the rest of
the traffic (a plain reply, a STOP) notifies no one."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from inbox_support import add_user, csrf_of, inbox_env, login, send_sms
from servers import ServerProcess, free_port

pytestmark = pytest.mark.slow


class Collected:
    """What the receivers got: JSON notifications by path, and mails."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, Any]]] = []
        self.mails: list[tuple[list[str], str]] = []
        self.changed = threading.Condition()

    def add_post(self, path: str, payload: dict[str, Any]) -> None:
        with self.changed:
            self.posts.append((path, payload))
            self.changed.notify_all()

    def add_mail(self, to: list[str], content: str) -> None:
        with self.changed:
            self.mails.append((to, content))
            self.changed.notify_all()

    def wait_for(self, check: Callable[[], bool], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not check():
                left = deadline - time.monotonic()
                assert left > 0, f"timed out: {self.posts} {self.mails}"
                self.changed.wait(left)

    def text(self, path: str) -> str:
        return "\n".join(
            p["title"] + "\n" + p["message"] for where, p in self.posts if where == path
        )


@pytest.fixture
def receivers() -> Iterator[tuple[Collected, int, int]]:
    from aiosmtpd.controller import Controller

    got = Collected()

    class Mail:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            got.add_mail(list(envelope.rcpt_tos), envelope.content.decode("utf-8", "replace"))
            return "250 OK"

    class Json(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            got.add_post(self.path, json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    smtp_port, http_port = free_port(), free_port()
    controller = Controller(Mail(), hostname="127.0.0.1", port=smtp_port)
    controller.start()
    http = HTTPServer(("127.0.0.1", http_port), Json)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    try:
        yield got, http_port, smtp_port
    finally:
        http.shutdown()
        controller.stop()


def test_messages_that_need_a_person_reach_them(
    tmp_path: Path, receivers: tuple[Collected, int, int]
) -> None:
    got, http_port, smtp_port = receivers
    port = free_port()
    mailto = (
        f"mailto://127.0.0.1:{smtp_port}?from=exosms@shop.test&to=owner@shop.test&mode=insecure"
    )
    (tmp_path / "exosms.toml").write_text(
        "[notify]\n"
        f'urls = ["json://127.0.0.1:{http_port}/shop", "{mailto}"]\n'
        "batch_seconds = 0.3\n"
        f'people = {{ priya = "json://127.0.0.1:{http_port}/priya" }}\n'
        "[exotel]\n"
        f'public_url = "http://127.0.0.1:{port}"\n'
        '\n[[rules]]\nkeyword = "CALLME"\nreply = "We will call you soon. -ACME"\nnotify = true\n'
        '\n[[rules]]\nkeyword = "HOURS"\nreply = "Open 10 am to 8 pm. -ACME"\n'
    )
    proc = ServerProcess(
        tmp_path, port, f"sqlite:///{tmp_path / 'exosms.db'}", env=inbox_env()
    ).start()
    try:
        send_sms(proc.url, "n1", "Where is my parcel?", sender="09811100111")  # no rule: no reply
        send_sms(proc.url, "n2", "CALLME please", sender="09811100222")  # a notify rule
        send_sms(proc.url, "n3", "HOURS", sender="09811100333")  # a reply: nobody to tell
        send_sms(proc.url, "n4", "STOP", sender="09811100444")  # a guard's doing: on purpose
        got.wait_for(
            lambda: "+919811100222" in got.text("/shop") and "+919811100111" in got.text("/shop")
        )
        shop = got.text("/shop")
        assert "+919811100111: Where is my parcel?" in shop
        assert f"http://127.0.0.1:{port}/inbox/c/%2B919811100111" in shop
        assert "+919811100222: CALLME please" in shop
        assert "+919811100333" not in shop and "+919811100444" not in shop
        assert "need a person" in shop or "needs a person" in shop
        got.wait_for(lambda: any("+919811100111" in mail for _, mail in got.mails))
        assert got.mails[0][0] == ["owner@shop.test"]
        assert "Subject: exosms:" in got.mails[0][1]

        # A conversation given to priya: its next message goes to her, not the list.
        client = login(proc.url)
        token = csrf_of(client.get("/inbox/c/+919811100111").text)
        assigned = client.post("/inbox/assign/+919811100111", data={"csrf": token, "user": "admin"})
        assert assigned.status_code == 303
        add_user(proc, "priya", "priya password 1")
        client.post("/inbox/assign/+919811100111", data={"csrf": token, "user": "priya"})
        before = len(got.posts)
        send_sms(proc.url, "n5", "Hello? Anyone?", sender="09811100111")
        got.wait_for(lambda: "Hello? Anyone?" in got.text("/priya"))
        assert "Hello? Anyone?" not in got.text("/shop")
        assert all(where == "/priya" for where, _ in got.posts[before:])
        deadline = time.monotonic() + 10  # the log line follows the notification
        while "notify: 1 messages sent to priya" not in proc.log():
            assert time.monotonic() < deadline, proc.log()
            time.sleep(0.05)
        # Counts in the log; customers' numbers and what Apprise says of addresses, not.
        assert "9811100111" not in proc.log() and "owner@shop.test" not in proc.log()
    finally:
        proc.stop()


def test_two_processes_notify_once_and_a_failed_batch_is_tried_again(
    tmp_path: Path, receivers: tuple[Collected, int, int]
) -> None:
    import asyncio

    from exosms.notifications import Notifier, apprise_sender
    from exosms.settings_sections import NotifySettings
    from exosms.store import open_database

    got, http_port, _ = receivers
    database = f"sqlite:///{tmp_path / 'exosms.db'}"
    proc = ServerProcess(tmp_path, free_port(), database).start()  # [notify] off: only stores
    try:
        for n in range(6):
            send_sms(proc.url, f"t{n}", f"question {n}", sender=f"0981110{n:04d}")
    finally:
        proc.stop()

    def notifier(db: Any, url: str) -> Notifier:
        settings = NotifySettings.model_validate({"urls": [url]})
        return Notifier(
            db.inbox.engine,
            settings,
            public_url=None,
            notify_rules=frozenset,
            send=apprise_sender(),
        )

    async def run() -> None:
        db = open_database(database)
        await db.open()
        try:
            dead = notifier(db, f"json://127.0.0.1:{free_port()}/nobody")  # nothing listens
            # The migration started the clock at creation: everything stored is newer.
            assert await dead.once() == 6
            assert got.posts == []  # not sent, and given back
            live = f"json://127.0.0.1:{http_port}/shop"
            first, second = notifier(db, live), notifier(db, live)
            counts = await asyncio.gather(first.once(), second.once())
            assert sorted(counts) == [0, 6]  # one of them took the batch
            assert await first.once() == 0  # nothing left
        finally:
            await db.close()

    asyncio.run(run())
    got.wait_for(lambda: len(got.posts) == 1)
    text = got.text("/shop")
    assert all(f"question {n}" in text for n in range(6))
    assert text.count("question") == 6
