"""An `exosms serve` with the inbox on (password and API token set), and a logged-in client."""

from __future__ import annotations

import re
from functools import cache

import httpx

PASSWORD = "correct horse battery staple"
API_TOKEN = "test-api-token-0123456789abcdef"


@cache
def password_hash() -> str:
    from exosms.passwords import hash_password

    return hash_password(PASSWORD)


def inbox_env(**extra: str) -> dict[str, str]:
    return {
        "EXOSMS_INBOX__PASSWORD_HASH": password_hash(),
        "EXOSMS_INBOX__API_TOKEN": API_TOKEN,
        "EXOSMS_INBOX__POLL_SECONDS": "0.5",
        **extra,
    }


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


def login_form(client: httpx.Client) -> str:
    page = client.get("/inbox/login")
    assert page.status_code == 200
    return csrf_of(page.text)


def login(base_url: str, password: str = PASSWORD, name: str = "") -> httpx.Client:
    """A client logged in as ``name`` (empty: the first admin)."""
    client = httpx.Client(base_url=base_url, follow_redirects=False, timeout=30)
    form = {"csrf": login_form(client), "name": name, "password": password, "next": "/inbox"}
    answer = client.post("/inbox/login", data=form)
    assert answer.status_code == 303, answer.text
    return client


def send_sms(base_url: str, sid: str, body: str, sender: str = "09876543210") -> str:
    answer = httpx.get(
        f"{base_url}/exotel/sms",
        params={
            "SmsSid": sid,
            "From": sender,
            "To": "08041000000",
            "Date": "2026-11-26 10:00:00",
            "Body": body,
        },
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return answer.text
