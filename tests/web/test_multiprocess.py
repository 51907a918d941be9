"""Several server processes on one database: exactly once and durable, across processes."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from servers import ServerProcess, free_port


def burst(urls: list[str], sid: str, count: int) -> list[httpx.Response]:
    async def fire() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=count)
        async with httpx.AsyncClient(limits=limits, timeout=20) as client:
            params = {"SmsSid": sid, "From": "9052161119", "To": "56070", "Body": "SLOWECHO x"}
            return await asyncio.gather(
                *(
                    client.request(
                        "HEAD" if n % 3 == 0 else "GET",
                        f"{urls[n % len(urls)]}/exotel/sms",
                        params=params,
                    )
                    for n in range(count)
                )
            )

    return asyncio.run(fire())


def assert_one_answer(answers: list[httpx.Response], sid: str) -> None:
    assert {a.status_code for a in answers} == {200}
    expected = f"x ({sid})".encode()
    assert {a.headers["content-length"] for a in answers} == {str(len(expected))}
    assert {a.content for a in answers if a.request.method == "GET"} == {expected}


@pytest.fixture
def two_pg_servers(pg_database: str, tmp_path: Path) -> Iterator[list[ServerProcess]]:
    servers = [
        ServerProcess(tmp_path, free_port(), pg_database, args=["--app", "exosms_test_apps:router"])
        for _ in range(2)
    ]
    for proc in servers:
        proc.start()
    yield servers
    for proc in servers:
        proc.stop()


def test_two_processes_on_postgresql_answer_one_sid_once(
    two_pg_servers: list[ServerProcess],
) -> None:
    sid = uuid.uuid4().hex
    answers = burst([p.url for p in two_pg_servers], sid, 200)
    assert_one_answer(answers, sid)
    assert two_pg_servers[0].calls(sid) == [sid]


def test_sigkill_of_one_postgresql_process_loses_no_acknowledged_message(
    two_pg_servers: list[ServerProcess], pg_database: str
) -> None:
    acknowledged: dict[str, bytes] = {}
    killed = threading.Event()
    finished = threading.Event()  # one second after the kill: the survivor kept answering

    async def client(n: int, http: httpx.AsyncClient) -> None:
        proc = two_pg_servers[n % 2]
        while not finished.is_set():
            sid = f"pk{n}-{uuid.uuid4().hex[:12]}"
            params = {"SmsSid": sid, "From": f"90000{n:05d}", "To": "56070", "Body": f"ECHO {sid}"}
            try:
                answer = await http.get(f"{proc.url}/exotel/sms", params=params)
            except httpx.HTTPError:
                if killed.is_set():
                    return
                continue
            if answer.status_code == 200:
                acknowledged[sid] = answer.content

    async def load() -> None:
        async with httpx.AsyncClient(timeout=5) as http:
            await asyncio.gather(*(client(n, http) for n in range(12)))

    def kill_soon() -> None:
        killed.wait(1.5)
        two_pg_servers[0].kill()
        killed.set()
        finished.wait(1.0)
        finished.set()

    killer = threading.Thread(target=kill_soon)
    killer.start()
    asyncio.run(load())
    killer.join()
    assert len(acknowledged) > 50
    survivor = {sid for sid in acknowledged if int(sid[2:].split("-")[0]) % 2 == 1}
    assert len(survivor) > 20, "the second process stopped answering"

    async def stored() -> dict[str, str]:
        conn = await asyncpg.connect(pg_database)
        try:
            rows = await conn.fetch(
                "SELECT sms_sid, reply FROM messages WHERE state = 'done' AND sms_sid LIKE 'pk%'"
            )
        finally:
            await conn.close()
        return {r["sms_sid"]: r["reply"] for r in rows}

    rows = asyncio.run(stored())
    assert [sid for sid in acknowledged if sid not in rows] == []
    assert all(rows[sid].encode() == body for sid, body in acknowledged.items())


def test_workers_2_on_sqlite_answer_one_sid_once(tmp_path: Path) -> None:
    proc = ServerProcess(
        tmp_path,
        free_port(),
        f"sqlite:///{tmp_path / 'exosms.db'}",
        args=["--app", "exosms_test_apps:router", "--workers", "2"],
    ).start()
    try:
        for _ in range(3):
            sid = uuid.uuid4().hex
            answers = burst([proc.url], sid, 200)
            assert_one_answer(answers, sid)
            assert proc.calls(sid) == [sid]
        # Both worker processes took part.
        pids = {
            line.split("[")[1].split("]")[0]
            for line in proc.log().splitlines()
            if "Started server process" in line
        }
        assert len(pids) == 2
    finally:
        proc.stop()
