"""Run `exosms fake-exotel` as a real process on loopback for the tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from servers import free_port


class FakeExotelProcess:
    def __init__(self, url: str) -> None:
        self.url = url

    def settings(self) -> dict[str, str]:
        """The `EXOSMS_EXOTEL__*` variables that point an exosms server at this fake."""
        return {
            "EXOSMS_EXOTEL__ACCOUNT_SID": "acme",
            "EXOSMS_EXOTEL__API_KEY": "key",
            "EXOSMS_EXOTEL__API_TOKEN": "token",
            "EXOSMS_EXOTEL__API_URL": self.url,
            "EXOSMS_EXOTEL__SENDER": "ACMEIN",
        }

    def fail(self, **failure: Any) -> None:
        httpx.post(f"{self.url}/_fake/fail", json=failure).raise_for_status()

    def messages(self) -> list[dict[str, str]]:
        return list(httpx.get(f"{self.url}/_fake/messages").json())

    def reset(self) -> None:
        httpx.post(f"{self.url}/_fake/reset").raise_for_status()

    def applet(self, url: str, body: str, sender: str = "09052161119") -> dict[str, Any]:
        """Exotel's Send a Reply applet calling ``url`` for one SMS: HEAD, then GET."""
        answer = httpx.post(
            f"{self.url}/_fake/applet", json={"url": url, "body": body, "from": sender}, timeout=30
        )
        answer.raise_for_status()
        return dict(answer.json())

    def webhook(
        self, url: str, body: str, shape: str = "json", sender: str = "+919052161119"
    ) -> str:
        answer = httpx.post(
            f"{self.url}/_fake/webhook",
            json={"url": url, "body": body, "shape": shape, "from": sender},
            timeout=30,
        )
        answer.raise_for_status()
        assert answer.json()["status"] == 200, answer.json()
        return str(answer.json()["SmsSid"])


@contextmanager
def fake_exotel(
    workdir: Path, database_url: str | None = None, env: dict[str, str] | None = None
) -> Iterator[FakeExotelProcess]:
    port = free_port()
    command = [sys.executable, "-m", "exosms", "fake-exotel", "--port", str(port)]
    if database_url:
        command += ["--database", database_url]
    log = (workdir / f"fake-exotel-{port}.log").open("wb")
    process = subprocess.Popen(
        command,
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{url}/_fake/messages", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("fake Exotel did not start") from None
                time.sleep(0.05)
        yield FakeExotelProcess(url)
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:  # a request it was told to never answer
            process.kill()
            process.wait(10)
