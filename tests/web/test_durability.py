"""Kill the server with SIGKILL while requests fly: every acknowledged SMS survives."""

from __future__ import annotations

import asyncio
import collections
import sqlite3
import threading
import uuid
from pathlib import Path

import httpx
from servers import ServerProcess, free_port


def test_sigkill_loses_no_acknowledged_message(tmp_path: Path) -> None:
    db = tmp_path / "exosms.db"
    proc = ServerProcess(
        workdir=tmp_path,
        port=free_port(),
        database_url=f"sqlite:///{db}",
        args=["--app", "exosms_test_apps:router"],
    ).start()
    acknowledged: dict[str, bytes] = {}
    killed = threading.Event()

    async def client(n: int, http: httpx.AsyncClient) -> None:
        while not killed.is_set():
            sid = f"k{n}-{uuid.uuid4().hex[:12]}"
            params = {"SmsSid": sid, "From": "9052161119", "To": "56070", "Body": f"ECHO {sid}"}
            try:
                answer = await http.get(f"{proc.url}/exotel/sms", params=params)
            except httpx.HTTPError:
                continue
            if answer.status_code == 200:
                acknowledged[sid] = answer.content

    async def load() -> None:
        async with httpx.AsyncClient(timeout=5) as http:
            await asyncio.gather(*(client(n, http) for n in range(16)))

    def kill_soon() -> None:
        killed.wait(1.5)
        proc.kill()
        killed.set()

    killer = threading.Thread(target=kill_soon)
    killer.start()
    asyncio.run(load())
    killer.join()
    assert len(acknowledged) > 50, "the load did not get going before the kill"
    print(f"{len(acknowledged)} acknowledged before SIGKILL")

    with sqlite3.connect(db) as conn:
        rows = dict(
            conn.execute("SELECT sms_sid, reply FROM messages WHERE state = 'done'").fetchall()
        )
    lost = [sid for sid in acknowledged if sid not in rows]
    assert lost == []
    assert all(rows[sid].encode() == body for sid, body in acknowledged.items())

    proc.start()  # same database, new process
    try:
        calls_before = collections.Counter(proc.calls())
        sample = list(acknowledged)[:40]
        for sid in sample:
            params = {"SmsSid": sid, "From": "9052161119", "To": "56070", "Body": f"ECHO {sid}"}
            again = httpx.get(f"{proc.url}/exotel/sms", params=params)
            assert again.content == acknowledged[sid]
        calls_after = collections.Counter(proc.calls())
        assert calls_after == calls_before, "a replayed SMS called the handler again"
        assert all(calls_after[sid] == 1 for sid in sample)
    finally:
        proc.stop()
