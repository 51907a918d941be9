"""The opt-outs page over real HTTP: what STOP did, a person opting a number out and back in
(each change said in words, the reply path obeying it at once), bad numbers refused."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from inbox_support import csrf_of, inbox_server, login, send_sms
from servers import ServerProcess

pytestmark = pytest.mark.slow


def reply_to(proc: ServerProcess, sid: str, body: str, sender: str) -> str:
    params = {"SmsSid": sid, "From": sender, "To": "56070", "Body": body}
    return httpx.get(f"{proc.url}/exotel/sms", params=params, timeout=10).text


def test_opt_outs_listed_added_and_removed_from_the_inbox(tmp_path: Path) -> None:
    proc = inbox_server(tmp_path, "--app", "exosms_test_apps:router")
    try:
        send_sms(proc.url, "o1", "STOP", sender="09811100044")
        client = login(proc.url)
        page = client.get("/inbox/optouts").text
        assert "1 opt-out</h2>" in page
        assert '<tr data-sender="+919811100044">' in page
        assert "the customer (STOP)" in page
        token = csrf_of(page)

        def post(path: str, **form: str) -> httpx.Response:
            return client.post(path, data={"csrf": token, **form})

        bad = post("/inbox/optouts/add", number="hello")
        assert bad.status_code == 400
        assert "&#39;hello&#39; is not a phone number" in bad.text
        assert post("/inbox/optouts/add", number="98111", recipient="x").status_code == 400
        assert reply_to(proc, "o2", "ECHO hi", "09811100055") == "hi"
        added = post("/inbox/optouts/add", number="09811100055", recipient="56070")
        assert added.status_code == 200
        assert (
            "+919811100055 opted out from 56070: nothing more is sent to them there" in added.text
        )
        assert "the inbox" in added.text
        assert reply_to(proc, "o3", "ECHO again", "09811100055") == ""  # in force at once
        again = post("/inbox/optouts/add", number="9811100055", recipient="56070")
        assert "+919811100055 was already opted out from 56070" in again.text
        removed = post("/inbox/optouts/remove", number="+919811100055", recipient="56070")
        assert "+919811100055: removed the opt-out from 56070; they get replies again" in (
            removed.text
        )
        assert reply_to(proc, "o4", "ECHO back", "09811100055") == "back"
        nothing = post("/inbox/optouts/remove", number="9811100055")
        assert "+919811100055 was not opted out" in nothing.text
        found = client.get("/inbox/optouts", params={"number": "100044"}).text
        assert "1 opt-out</h2>" in found and "+919811100044" in found
        assert client.post("/inbox/optouts/add", data={"number": "9811100066"}).status_code == 403
        assert httpx.get(f"{proc.url}/inbox/optouts").status_code == 303  # log in first
    finally:
        proc.stop()
