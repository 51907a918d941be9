"""Replying by hand in a real Chromium: a template picked and its slots filled, the live
preview, the reply received by the fake Exotel with its DLT template id, its delivery shown
without a reload; a reply that fails the DLT check cannot be sent and says why. The whole
walk on SQLite, and on PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from fake_exotel import FakeExotelProcess, fake_exotel
from inbox_support import add_user, inbox_env, send_sms
from pg import create_database, drop_database
from servers import ServerProcess, free_port

pytestmark = pytest.mark.slow

ORDER = "1107160000000000001"
HOURS = "1107160000000000002"
TEMPLATES = f"""
[[template]]
id = "{ORDER}"
name = "Order status"
content = "Dear {{#var#}}, your order {{#numeric#}} is on its way. -ACME"

[[template]]
id = "{HOURS}"
name = "Shop hours"
content = "We are open 10 am to 8 pm, Monday to Saturday. -ACME"

[[template]]
id = "1107160000000000003"
name = "Opted out"
content = "You will get no more SMS from ACME. Send START to join again."

[[template]]
id = "1107160000000000004"
name = "Opted in"
content = "Welcome back to ACME SMS. Send STOP to opt out."
"""
CUSTOMER = "09811100011"
AGENT = ("meena", "meena's password 1")
SHOWN = "+919811100011"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, FakeExotelProcess]]:
    workdir = tmp_path_factory.mktemp(f"compose-{request.param}")
    if request.param == "sqlite":
        database = f"sqlite:///{workdir / 'exosms.db'}"
    else:  # a database of its own: templates imported here must not reach other tests
        database = create_database()
        request.addfinalizer(lambda: drop_database(database))
    (workdir / "templates.toml").write_text(TEMPLATES)
    imported = subprocess.run(
        [sys.executable, "-m", "exosms", "dlt", "import", "templates.toml", "--database", database],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert imported.returncode == 0, imported.stderr
    with fake_exotel(workdir, database) as fake:
        port = free_port()
        proc = ServerProcess(
            workdir,
            port,
            database,
            args=["--app", "exosms_test_apps:router"],
            env=inbox_env(
                **fake.settings(),
                EXOSMS_EXOTEL__PUBLIC_URL=f"http://127.0.0.1:{port}",
            ),
        ).start()
        add_user(proc, *AGENT)
        send_sms(proc.url, f"c1-{request.param}", "Is my order on its way?", sender=CUSTOMER)
        yield proc, fake
        proc.stop()


@pytest.fixture
def page(browser: Any, site: tuple[ServerProcess, FakeExotelProcess]) -> Iterator[Any]:
    context = browser.new_context(base_url=site[0].url)
    opened = context.new_page()
    opened.set_default_timeout(10_000)
    opened.goto("/inbox")  # an agent: replying is an agent's work
    opened.fill("#name", AGENT[0])
    opened.fill("#password", AGENT[1])
    opened.click("button[type=submit]")
    opened.wait_for_url("**/inbox")
    yield opened
    context.close()


def test_a_reply_with_a_template_reaches_exotel_and_shows_delivered(
    page: Any, site: tuple[ServerProcess, FakeExotelProcess], shot: Any, request: Any
) -> None:
    _proc, fake = site
    backend = request.node.callspec.params["site"]
    page.goto(f"/inbox/c/{SHOWN}")
    page.wait_for_selector("#compose")
    assert page.locator("#not-configured").count() == 0
    options = page.locator("#template option")
    assert options.all_inner_texts()[1:] == [
        "Opted in (1107160000000000004)",
        "Opted out (1107160000000000003)",
        f"Order status ({ORDER})",
        f"Shop hours ({HOURS})",
    ]
    page.select_option("#template", ORDER)
    slots = page.locator("#slots input")
    assert slots.count() == 2
    assert page.locator("#slots label").all_inner_texts() == [
        "Slot 1 (any text)",
        "Slot 2 (numeric)",
    ]
    slots.nth(0).fill("Ravi")
    # A slot typed numeric holds digits only: the preview refuses letters, names the template.
    slots.nth(1).fill("55A1")
    page.wait_for_selector("#send:disabled")
    page.wait_for_selector("#preview .held")
    assert ORDER in page.locator("#preview").inner_text()
    slots.nth(1).fill("5521")
    body = "Dear Ravi, your order 5521 is on its way. -ACME"
    assert page.input_value("#reply-body") == body
    page.wait_for_selector(f"#preview .ok:has-text('matches template {ORDER}')")
    assert "1 SMS part" in page.locator("#preview").inner_text()
    assert "GSM-7" in page.locator("#preview").inner_text()
    shot(page, f"20-compose-{backend}-1280")
    page.click("#send")
    page.wait_for_url("**/inbox/c/%2B919811100011#out*")
    sent = [m for m in fake.messages() if m["Body"] == body]
    assert len(sent) == 1, fake.messages()
    assert sent[0]["DltTemplateId"] == ORDER
    assert sent[0]["To"] == SHOWN and sent[0]["From"] == "ACMEIN"
    # The fake's status callback arrives after the page loaded: shown without a reload.
    bubble = page.locator("li.turn.hand").last
    assert bubble.locator(".text").inner_text() == body
    bubble.locator(".status-delivered").wait_for()
    assert "sent by hand by meena" in bubble.inner_text()
    assert f"DLT {ORDER}" in bubble.inner_text()
    page.set_viewport_size({"width": 390, "height": 844})
    shot(page, f"21-thread-replied-{backend}-390")


def test_a_reply_that_fails_the_dlt_check_cannot_be_sent_and_says_why(
    page: Any, site: tuple[ServerProcess, FakeExotelProcess], shot: Any, request: Any
) -> None:
    _proc, fake = site
    backend = request.node.callspec.params["site"]
    before = len(fake.messages())
    page.goto(f"/inbox/c/{SHOWN}")
    text = "Dear Ravi, your order 5521 has shipped. -ACME"
    page.fill("#reply-body", text)
    page.wait_for_selector("#preview .held")
    preview = page.locator("#preview").inner_text()
    assert f"closest is {ORDER}" in preview
    assert "Dear {#var#}, your order {#numeric#} is on its way. -ACME" in preview
    assert page.locator("#preview code.register").inner_text() == (
        "Dear Ravi, your order {#var#} has shipped. -ACME"
    )
    assert page.locator("#send").is_disabled()
    shot(page, f"22-compose-refused-{backend}-1280")
    # The same text posted by hand (no script): refused with the reason, the text kept.
    page.evaluate("document.querySelector('#send').disabled = false")
    page.click("#send")
    page.wait_for_selector("#compose-error")
    assert "DLT: no template matches; closest is" in page.locator("#compose-error").inner_text()
    assert page.input_value("#reply-body") == text
    assert len(fake.messages()) == before
