"""Every inbox page in a real Chromium at a phone's width (390 px) and a desktop's (1280 px),
photographed to tests/artifacts/; the badge and the thread's counter follow new messages
without a reload; an agent is turned away from the admin pages; dates are asked for and
shown day first."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from inbox_support import PASSWORD, add_user, inbox_env, send_sms
from servers import ServerProcess, free_port

pytestmark = pytest.mark.slow

AGENT = ("priya", "agent password 1")
PAGES = (
    ("30-conversations", "/inbox"),
    ("31-thread", "/inbox/c/%2B919811100601"),
    ("32-message", "/inbox/m/1"),
    ("33-search", "/inbox/search?q=parcel"),
    ("34-overview", "/inbox/overview"),
    ("35-try", "/inbox/try"),
    ("36-outbox", "/inbox/outbox"),
    ("37-optouts", "/inbox/optouts"),
    ("38-dlt", "/inbox/dlt"),
    ("39-users", "/inbox/users"),
    ("40-forwarding", "/inbox/forwarding"),
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("pages")
    proc = ServerProcess(
        workdir, free_port(), f"sqlite:///{workdir / 'exosms.db'}", env=inbox_env()
    ).start()
    add_user(proc, *AGENT)
    send_sms(proc.url, "p1", "Where is my parcel? Order 5521", sender="09811100601")
    send_sms(proc.url, "p2", "ECHO नमस्ते, कीमत क्या है?", sender="09811100602")
    send_sms(proc.url, "p3", "STOP", sender="09811100603")
    yield proc
    proc.stop()


def open_as(browser: Any, proc: ServerProcess, name: str, password: str, width: int) -> Any:
    context = browser.new_context(base_url=proc.url, viewport={"width": width, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.goto("/inbox")
    page.fill("#name", name)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/inbox")
    return page


@pytest.mark.parametrize("width", [390, 1280])
def test_every_page_at_phone_and_desktop_width(
    browser: Any, site: ServerProcess, shot: Any, width: int
) -> None:
    page = open_as(browser, site, "", PASSWORD, width)
    for name, path in PAGES:
        answer = page.goto(path)
        assert answer is not None and answer.status == 200, path
        # Nothing wider than the screen but what scrolls on purpose (the hourly chart).
        overflow = page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        wide = page.evaluate(
            "() => [...document.querySelectorAll('body *')].filter(e => !e.closest('.scroll-x'))"
            ".map(e => [e.scrollWidth - e.clientWidth, e.getBoundingClientRect().right,"
            " e.tagName + '.' + e.className + '#' + e.id]).filter(x => x[0] > 1 || x[1] >"
            " document.documentElement.clientWidth + 1).slice(0, 4)"
        )
        assert overflow <= 1, f"{path} is {overflow}px wider than {width}px: {wide}"
        shot(page, f"{name}-{width}")
    page.goto("/inbox/search")
    assert page.get_attribute("input[name=from]", "placeholder") == "dd/mm/yyyy"
    page.fill("input[name=from]", "01/11/2026")
    with page.expect_navigation():
        page.press("input[name=from]", "Enter")
    assert "from=01%2F11%2F2026" in page.url
    assert "is not a date" not in page.content()
    page.context.close()


def test_counters_follow_new_messages_and_agents_stay_out_of_admin_pages(
    browser: Any, site: ServerProcess
) -> None:
    page = open_as(browser, site, *AGENT, 1280)
    assert page.inner_text("#who-am-i") == "priya · agent"
    assert page.locator("nav a[href='/inbox/dlt']").count() == 0
    badge = page.locator("#unread")
    before = int(badge.inner_text() or 0)
    send_sms(site.url, "p4", "One more question", sender="09811100604")
    badge.filter(has_text=re.compile(rf"^{before + 1}$")).wait_for()  # no reload
    page.goto("/inbox/c/%2B919811100601")
    assert page.inner_text("#message-count") == "1 message"
    send_sms(site.url, "p5", "Hello again", sender="09811100601")
    page.wait_for_selector("#message-count:has-text('2 messages')")
    for path in ("/inbox/dlt", "/inbox/optouts", "/inbox/users"):
        answer = page.goto(path)
        assert answer is not None and answer.status == 403, path
        assert "Only an admin can open this page" in page.content()
    page.context.close()
