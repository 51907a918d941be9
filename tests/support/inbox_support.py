"""An `exosms serve` with the inbox on (password and API token set), and a logged-in client."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import httpx
from servers import ServerProcess, free_port

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


def inbox_server(
    workdir: Path,
    *args: str,
    exotel: dict[str, str] | None = None,
    database: str | None = None,
    **env: str,
) -> ServerProcess:
    """`exosms serve` with the inbox on, started: on ``database`` (default a SQLite file in
    ``workdir``); ``args`` go to serve (``--app ...``); ``exotel``: a fake Exotel's
    settings (its status callbacks come back to this server); ``env`` beside them."""
    port = free_port()
    if exotel is not None:
        env = {**exotel, "EXOSMS_EXOTEL__PUBLIC_URL": f"http://127.0.0.1:{port}", **env}
    return ServerProcess(
        workdir,
        port,
        database or f"sqlite:///{workdir / 'exosms.db'}",
        args=list(args),
        env=inbox_env(**env),
    ).start()


def add_user(proc: ServerProcess, name: str, password: str, role: str = "agent") -> None:
    """`exosms users add` on the server's database, as an admin would run it."""
    import subprocess
    import sys

    done = subprocess.run(
        [
            *(sys.executable, "-m", "exosms", "users", "add", name, "--role", role),
            *("--password-stdin", "--database", proc.database_url),
        ],
        input=password + "\n",
        cwd=proc.workdir,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
