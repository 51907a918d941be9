"""What the fault suite shares: servers on a given database, and an SMS client that keeps
Exotel's view of every answer."""

from __future__ import annotations

import asyncio
import collections
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from servers import ServerProcess, free_port

DEADLINE = 1.0  # the servers' reply_deadline here: a request's whole budget is this + 1 s


def serve(workdir: Path, database_url: str, rules: str | None = None, **env: str) -> ServerProcess:
    """`exosms serve` on ``database_url`` with the test handlers, or with ``rules`` (a rules
    file's TOML, put in the folder's exosms.toml: replies made without user code)."""
    workdir.mkdir(parents=True, exist_ok=True)
    if rules is not None:
        (workdir / "exosms.toml").write_text(rules)
    return ServerProcess(
        workdir=workdir,
        port=free_port(),
        database_url=database_url,
        args=[] if rules is not None else ["--app", "exosms_test_apps:router"],
        env={"EXOSMS_REPLY_DEADLINE": str(DEADLINE), **env},
    ).start()


@dataclass
class Exotel:
    """Sends SMS as Exotel's applet would and remembers every answer it got."""

    answers: dict[str, list[tuple[int | None, bytes, float]]] = field(
        default_factory=lambda: collections.defaultdict(list)
    )

    async def send(
        self, http: httpx.AsyncClient, url: str, sid: str, body: str, method: str = "GET"
    ) -> tuple[int | None, bytes, float]:
        params = {"SmsSid": sid, "From": "9052161119", "To": "56070", "Body": body}
        started = time.monotonic()
        try:
            answer = await http.request(method, f"{url}/exotel/sms", params=params)
            got: tuple[int | None, bytes, float] = (
                answer.status_code,
                answer.content,
                time.monotonic() - started,
            )
        except httpx.HTTPError as error:
            got = (None, str(error).encode(), time.monotonic() - started)
        self.answers[sid].append(got)
        return got

    async def until_answered(
        self, http: httpx.AsyncClient, url: str, sid: str, body: str, within: float = 20
    ) -> bytes:
        """Retry as Exotel might, until a 200 (bounded)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            status, content, _ = await self.send(http, url, sid, body)
            if status == 200:
                return content
            await asyncio.sleep(0.2)  # Exotel's retry interval, not a synchronisation
        raise AssertionError(f"{sid} was never answered: {self.answers[sid][-3:]}")

    def ok(self) -> dict[str, bytes]:
        """Every SmsSid that got a 200, with the one body all its 200s carried."""
        bodies: dict[str, set[bytes]] = collections.defaultdict(set)
        for sid, answers in self.answers.items():
            for status, content, _ in answers:
                if status == 200:
                    bodies[sid].add(content)
        different = {sid: b for sid, b in bodies.items() if len(b) > 1}
        assert different == {}, "one SmsSid was answered with different bodies"
        return {sid: next(iter(b)) for sid, b in bodies.items()}


def new_sid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def wait_for(condition: object, timeout: float = 10.0) -> None:
    """Wait for ``condition()`` to be true (an event in another process: a file, a row)."""
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("the awaited event did not happen")
        await asyncio.sleep(0.005)
