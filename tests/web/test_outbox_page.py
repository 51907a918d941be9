"""The outbox page over real HTTP: an SMS held because Exotel's answer and callback were
lost, given up and then resent by a person (who and when kept), filters, bad input."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fake_exotel import fake_exotel
from inbox_support import csrf_of, inbox_server, login, send_sms
from waiting import wait_for

pytestmark = pytest.mark.slow

SHOWN = "+919811100077"


def test_a_held_sms_is_given_up_then_resent_by_a_person(tmp_path: Path) -> None:
    with fake_exotel(tmp_path) as fake:
        proc = inbox_server(
            tmp_path,
            "--app",
            "exosms_test_apps:router",
            exotel=fake.settings(),
            EXOSMS_EXOTEL__TIMEOUT_SECONDS="1",
            EXOSMS_EXOTEL__UNKNOWN_WAIT_SECONDS="1",
        )
        try:
            send_sms(proc.url, "ob1", "Can you call me?", sender="09811100077")
            client = login(proc.url)
            token = csrf_of(client.get(f"/inbox/c/{SHOWN}").text)
            fake.fail(drop_answer=True, lose_callback=True)
            sent = client.post(
                f"/inbox/reply/{SHOWN}", data={"csrf": token, "body": "Calling you at 5 pm."}
            )
            assert sent.status_code == 303
            wait_for(lambda: 'class="state-held"' in client.get("/inbox/outbox").text)
            page = client.get("/inbox/outbox", params={"state": "held"}).text
            assert "1 held</span>" in page
            assert "Calling you at 5 pm." in page and "sent by admin" in page
            assert 'value="resend">Resend</button>' in page
            assert 'value="give-up">Give up</button>' in page
            assert len(fake.messages()) == 1  # held: never resent by itself
            row_id = page.split('<tr data-id="')[1].split('"')[0]

            def decide(choice: str) -> httpx.Response:
                return client.post(
                    "/inbox/outbox/decide", data={"csrf": token, "id": row_id, "choice": choice}
                )

            given_up = decide("give-up")
            assert given_up.status_code == 200
            assert f"#{row_id} given up, by admin: it will not be sent again" in given_up.text
            assert "decided by admin" in given_up.text
            again = decide("give-up")
            assert again.status_code == 409
            assert "was not held or in doubt (already decided, or settled)" in again.text
            resent = decide("resend")
            assert f"#{row_id} queued to send again, by admin" in resent.text
            wait_for(lambda: len(fake.messages()) == 2)
            wait_for(
                lambda: (
                    'class="state-delivered"'
                    in client.get("/inbox/outbox", params={"number": "9811100077"}).text
                )
            )
            assert (
                client.get("/inbox/outbox", params={"state": "held"}).text.count("<tr data-id=")
                == 0
            )
            bad = client.get("/inbox/outbox", params={"state": "lost"})
            assert bad.status_code == 400
            assert "state: one of queued, sent, delivered, failed, held, not &#39;lost&#39;" in (
                bad.text
            )
            assert decide("maybe").status_code == 400
            no_csrf = client.post("/inbox/outbox/decide", data={"id": row_id, "choice": "resend"})
            assert no_csrf.status_code == 403
        finally:
            proc.stop()
