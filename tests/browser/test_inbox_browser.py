"""The inbox in a real Chromium: log in, live updates from the webhook, search, filter, a
message, try it, export, XSS and CSRF, log out. Every page is photographed to tests/artifacts/."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fake_exotel import FakeExotelProcess, fake_exotel
from inbox_support import PASSWORD, inbox_env, send_sms
from servers import ServerProcess, free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServerProcess, FakeExotelProcess]]:
    workdir = tmp_path_factory.mktemp("browser")
    with fake_exotel(workdir) as fake:
        port = free_port()
        proc = ServerProcess(
            workdir,
            port,
            f"sqlite:///{workdir / 'exosms.db'}",
            args=["--app", "exosms_test_apps:router"],
            env=inbox_env(
                EXOSMS_EXOTEL__ACCOUNT_SID="acme",
                EXOSMS_EXOTEL__API_KEY="key",
                EXOSMS_EXOTEL__API_TOKEN="token",
                EXOSMS_EXOTEL__API_URL=fake.url,
                EXOSMS_EXOTEL__SENDER="ACMEIN",
                EXOSMS_EXOTEL__PUBLIC_URL=f"http://127.0.0.1:{port}",
            ),
        ).start()
        send_sms(proc.url, "b1", "ECHO Your order 1234 is packed")
        send_sms(proc.url, "b2", "कीमत क्या है?", sender="09811122233")
        send_sms(proc.url, "b3", '=HYPERLINK("http://evil")', sender="09811122233")
        send_sms(proc.url, "b4", "ECHO नमस्ते, order 77")
        yield proc, fake
        proc.stop()


@pytest.fixture
def page(browser: Any, site: tuple[ServerProcess, FakeExotelProcess]) -> Iterator[Any]:
    context = browser.new_context(base_url=site[0].url, accept_downloads=True)
    opened = context.new_page()
    opened.set_default_timeout(10_000)
    yield opened
    context.close()


def log_in(page: Any) -> None:
    page.goto("/inbox")
    assert "/inbox/login" in page.url
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/inbox")


def test_log_in_see_conversations_and_log_out(page: Any, shot: Any) -> None:
    page.goto("/inbox")
    page.wait_for_selector("#password")
    shot(page, "01-login")
    page.fill("#password", "not the password")
    page.click("button[type=submit]")
    assert page.locator("[role=alert]").inner_text() == "Wrong password."
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/inbox")
    rows = page.locator("li.conversation")
    assert rows.count() == 2
    assert rows.first.get_attribute("data-sender") == "+919876543210"  # newest first
    shot(page, "02-conversations")
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["exosms_session"]["httpOnly"] and cookies["exosms_session"]["sameSite"] == "Lax"
    assert page.evaluate("document.cookie") == ""  # scripts cannot read the session
    page.click("text=Log out")
    page.wait_for_url("**/inbox/login")
    page.goto("/inbox")
    assert "/inbox/login" in page.url


def test_a_webhook_sms_appears_live_without_a_reload(
    page: Any, site: tuple[ServerProcess, FakeExotelProcess], shot: Any
) -> None:
    proc, fake = site
    log_in(page)
    page.evaluate("window.notReloaded = true")
    assert page.locator('[data-sender="+919700000042"]').count() == 0
    fake.webhook(
        f"{proc.url}/exotel/webhook",
        "ECHO Order 42 is out for delivery. -ACME",
        sender="+919700000042",
    )
    row = page.locator('li.conversation[data-sender="+919700000042"]')
    row.wait_for(timeout=10_000)
    assert "unread" in (row.get_attribute("class") or "")
    assert page.evaluate("window.notReloaded") is True
    assert page.locator("li.conversation").first.get_attribute("data-sender") == "+919700000042"
    shot(page, "03-live-update")
    row.click()
    page.wait_for_selector(".bubble.in")
    assert "Order 42 is out for delivery" in page.locator(".bubble.out").last.inner_text()
    # the thread itself updates live too
    page.evaluate("window.notReloaded = true")
    fake.webhook(f"{proc.url}/exotel/webhook", "ECHO thanks!", sender="+919700000042")
    page.locator(".bubble.in", has_text="ECHO thanks!").wait_for(timeout=10_000)
    assert page.evaluate("window.notReloaded") is True
    shot(page, "04-thread")
    # In view, the conversation is marked read by the page's POST, the new message too.
    page.wait_for_selector("form.mark-read[data-mark-read='0']", state="attached")
    page.wait_for_selector("form.mark-read button", state="detached")
    page.goto("/inbox")
    read = page.locator('li.conversation[data-sender="+919700000042"]')
    assert "unread" not in (read.get_attribute("class") or "")


def test_search_filter_and_open_a_message(page: Any, shot: Any) -> None:
    log_in(page)
    page.click("nav >> text=Search")
    page.fill("input[name=q]", "order")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**/inbox/search?**")
    bodies = page.locator("table.results td.text").all_inner_texts()
    assert "ECHO Your order 1234 is packed" in bodies and "ECHO नमस्ते, order 77" in bodies
    page.fill("input[name=q]", "कीमत")
    page.click("form.filters button[type=submit]")
    page.wait_for_load_state()
    assert page.locator("table.results tbody tr").count() == 1
    page.fill("input[name=q]", "")
    page.select_option("select[name=outcome]", "no_reply")
    page.click("form.filters button[type=submit]")
    page.wait_for_load_state()
    outcomes = page.locator("table.results tbody tr td:nth-child(5)").all_inner_texts()
    assert outcomes and set(outcomes) == {"no reply"}
    shot(page, "05-search")
    page.locator("table.results tbody tr a[href^='/inbox/m/']").first.click()
    page.wait_for_url("**/inbox/m/*")
    assert page.locator("th", has_text="query").count() >= 1
    assert (
        "no rule" in page.locator("dl.summary").inner_text()
        or "chose not to reply" in page.locator("dl.summary").inner_text()
    )
    shot(page, "06-message")


def test_try_it(page: Any, shot: Any) -> None:
    log_in(page)
    page.click("nav >> text=Try it")
    page.fill("textarea[name=body]", "ECHO Your OTP is 1234")
    page.click("form.try button[type=submit]")
    page.wait_for_selector("#try-result")
    assert page.inner_text("#try-rule") == "echo"
    assert page.inner_text("#try-reply") == "Your OTP is 1234"
    assert "1 part" in page.inner_text("#try-parts")
    shot(page, "07-try-it")


def test_export_downloads_a_safe_csv(page: Any, tmp_path: Path) -> None:
    log_in(page)
    page.goto("/inbox/search?number=98111")
    with page.expect_download() as download_info:
        page.click("text=CSV")
    saved = tmp_path / "export.csv"
    download_info.value.save_as(saved)
    rows = list(csv.DictReader(io.StringIO(saved.read_text(encoding="utf-8-sig"))))
    assert {row["body"] for row in rows} == {"कीमत क्या है?", '\'=HYPERLINK("http://evil")'}


def test_overview_and_phone_layout(page: Any, browser: Any, site: Any, shot: Any) -> None:
    log_in(page)
    page.click("nav >> text=Overview")
    page.wait_for_selector("svg.chart rect")
    assert page.locator("svg.chart").count() >= 4
    shot(page, "08-overview")
    phone = browser.new_context(base_url=site[0].url, viewport={"width": 390, "height": 844})
    small = phone.new_page()
    log_in(small)
    width = small.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width}px wide on a 390px phone"
    shot(small, "09-phone-conversations")
    small.goto("/inbox/c/%2B919876543210")
    assert small.evaluate("document.documentElement.scrollWidth") <= 390
    shot(small, "10-phone-thread")
    phone.close()


def test_a_script_in_a_message_stays_text(page: Any, site: Any, shot: Any) -> None:
    proc, _ = site
    body = '<img src=x onerror="window.pwned=1"><script>window.pwned=1</script>'
    send_sms(proc.url, "xss1", body, sender="09000000666")
    log_in(page)
    page.goto("/inbox/c/%2B919000000666")
    assert page.locator(".bubble.in .text").first.inner_text() == body
    assert page.evaluate("window.pwned") is None
    assert page.locator(".bubble img").count() == 0
    page.goto("/inbox/search?q=pwned")
    assert page.evaluate("window.pwned") is None
    shot(page, "11-xss-as-text")


def test_a_post_without_the_csrf_token_is_refused(page: Any) -> None:
    log_in(page)
    status = page.evaluate(
        """async () => (await fetch('/inbox/try', {method: 'POST',
            body: new URLSearchParams({body: 'ECHO hi'})})).status"""
    )
    assert status == 403
    # the same request with the page's token is fine
    status = page.evaluate(
        """async () => (await fetch('/inbox/try', {method: 'POST', body: new URLSearchParams({
            body: 'ECHO hi', csrf: document.querySelector('input[name=csrf]').value})})).status"""
    )
    assert status == 200
    assert httpx.get(page.url).status_code in (200, 303)
