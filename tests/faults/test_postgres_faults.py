"""PostgreSQL crashed, frozen and restarted under load: never a 200 without the stored row and
its bytes, the handler once per SmsSid, a 503 in time, and service back on its own."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from faults_support import DEADLINE, Exotel, new_sid, serve, wait_for
from private_pg import PrivateCluster
from servers import ServerProcess

pytestmark = [pytest.mark.faults, pytest.mark.slow]

ROUNDS = 3
PER_ROUND = 80


async def _stored(url: str) -> dict[str, tuple[str, str | None, int]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT sms_sid, state, reply, takeovers FROM messages")
    finally:
        await conn.close()
    return {r["sms_sid"]: (r["state"], r["reply"], r["takeovers"]) for r in rows}


def _run_then_read(
    proc: ServerProcess, work: Callable[[], Coroutine[Any, Any, None]], url: str
) -> dict[str, tuple[str, str | None, int]]:
    """Run ``work`` against ``proc``, stop the server, and read what the database stored."""
    try:
        asyncio.run(work())
        return asyncio.run(_stored(url))
    finally:
        proc.stop()


def _first_answers(exotel: Exotel, sids: list[str]) -> collections.Counter[int | None]:
    """How each SmsSid was first answered (its status; None when the connection failed)."""
    return collections.Counter(exotel.answers[sid][0][0] for sid in sids)


def _assert_every_200_is_stored(
    exotel: Exotel, stored: dict[str, tuple[str, str | None, int]]
) -> None:
    for sid, body in exotel.ok().items():
        assert sid in stored, f"{sid} got a 200 but is not stored"
        state, reply, _ = stored[sid]
        assert state == "done"
        assert (reply or "").encode() == body, f"{sid}: 200 with other bytes than stored"


def test_crash_rounds_never_answer_what_is_not_stored(
    cluster: PrivateCluster, tmp_path: Path
) -> None:
    proc = serve(tmp_path / "a", cluster.url)
    exotel = Exotel()
    sids: list[str] = []

    async def rounds() -> None:
        limits = httpx.Limits(max_connections=PER_ROUND + 10)
        async with httpx.AsyncClient(timeout=10, limits=limits) as http:
            for n in range(ROUNDS):
                batch = [new_sid(f"crash{n}") for _ in range(PER_ROUND)]
                sids.extend(batch)
                before = len(proc.calls())
                sent = [
                    asyncio.create_task(exotel.send(http, proc.url, sid, f"SLOWECHO {sid}"))
                    for sid in batch
                ]
                # Crash while handlers run: the first of this round's handlers has started.
                await wait_for(lambda: len(proc.calls()) > before)
                cluster.crash()
                cluster.start()
                await asyncio.gather(*sent)
            # Exotel retries what was not answered; answered ones are asked again too.
            for sid in sids:
                await exotel.until_answered(http, proc.url, sid, f"SLOWECHO {sid}")

    stored = _run_then_read(proc, rounds, cluster.url)
    first = _first_answers(exotel, sids)
    print(f"first answers over {ROUNDS} crash rounds of {PER_ROUND}: {dict(first)}")
    assert first[503] > 0, "no request met the crash: the test did not test"
    _assert_every_200_is_stored(exotel, stored)
    calls = collections.Counter(proc.calls())
    twice = {sid: n for sid, n in calls.items() if n > 1 and sid in set(sids)}
    assert twice == {}, "a handler ran twice after a database crash"
    assert all(calls[sid] == 1 for sid in sids)


def test_a_frozen_database_gets_503_in_time_and_service_resumes(
    cluster: PrivateCluster, tmp_path: Path
) -> None:
    proc = serve(tmp_path / "b", cluster.url)
    exotel = Exotel()
    mid = new_sid("mid")
    fresh = [new_sid("frozen") for _ in range(20)]

    async def run() -> None:
        async with httpx.AsyncClient(timeout=30) as http:
            warm = new_sid("warm")
            assert (await exotel.send(http, proc.url, warm, f"SLOWECHO {warm}"))[0] == 200
            # One message is in its handler when the database freezes: its answer cannot be
            # stored; the others cannot even be claimed.
            in_handler = asyncio.create_task(exotel.send(http, proc.url, mid, f"SLOWECHO {mid}"))
            await wait_for(lambda: mid in proc.calls())
            cluster.freeze()
            try:
                results = await asyncio.gather(
                    in_handler,
                    *(exotel.send(http, proc.url, sid, f"SLOWECHO {sid}") for sid in fresh),
                )
                health = await http.get(f"{proc.url}/healthz")
            finally:
                cluster.thaw()
            for status, content, took in results:
                assert status == 503, content
                assert took <= DEADLINE + 1 + 0.3, f"503 after {took:.2f}s"
            assert health.status_code == 503
            print(f"frozen: slowest 503 after {max(t for _, _, t in results):.2f}s")
            for sid in [mid, *fresh]:
                await exotel.until_answered(http, proc.url, sid, f"SLOWECHO {sid}")

    stored = _run_then_read(proc, run, cluster.url)
    _assert_every_200_is_stored(exotel, stored)
    calls = collections.Counter(proc.calls())
    assert calls[mid] == 1, "the answer worked out before the freeze was worked out again"
    assert all(calls[sid] == 1 for sid in fresh)
    assert "did not answer within" in proc.log()  # a real reason, not an empty one


def test_any_worker_serves_the_stored_answer_once_the_database_is_back(
    cluster: PrivateCluster, tmp_path: Path
) -> None:
    a = serve(tmp_path / "wa", cluster.url)
    b = serve(tmp_path / "wb", cluster.url, EXOSMS_TEST_CALLS=str(a.calls_file))
    exotel = Exotel()
    sid = new_sid("split")

    async def run() -> None:
        async with httpx.AsyncClient(timeout=10) as http:
            head = await exotel.send(http, a.url, sid, f"SLOWECHO {sid}", method="HEAD")
            assert head[0] == 200
            cluster.crash()
            try:
                during = await exotel.send(http, b.url, sid, f"SLOWECHO {sid}")
                assert during[0] == 503  # never a different answer
            finally:
                cluster.start()
            body = await exotel.until_answered(http, b.url, sid, f"SLOWECHO {sid}")
            assert body == f"SLOWECHO {sid}".split(" ", 1)[1].encode() + f" ({sid})".encode()

    try:
        asyncio.run(run())
    finally:
        a.stop()
        b.stop()
    assert a.calls(sid) == [sid]  # one handler call, across both processes


def test_a_killed_owner_s_claim_is_taken_over_once_and_marked(
    cluster: PrivateCluster, tmp_path: Path
) -> None:
    a = serve(tmp_path / "ka", cluster.url)
    b = serve(tmp_path / "kb", cluster.url, EXOSMS_TEST_CALLS=str(a.calls_file))
    exotel = Exotel()
    sid = new_sid("killed")

    async def run() -> float:
        async with httpx.AsyncClient(timeout=10) as http:
            doomed = asyncio.create_task(exotel.send(http, a.url, sid, "SLEEP 0.5"))
            await wait_for(lambda: sid in a.calls())
            a.kill()  # mid-handler: the answer was never stored
            await doomed
            started = time.monotonic()
            # While the dead owner's lease lasts, B says "try again", never runs it.
            first = await exotel.send(http, b.url, sid, "SLEEP 0.5")
            assert first[0] == 503
            await exotel.until_answered(http, b.url, sid, "SLEEP 0.5")
            return time.monotonic() - started

    try:
        took = asyncio.run(run())
        stored = asyncio.run(_stored(cluster.url))
    finally:
        a.stop()
        b.stop()
    print(f"taken over {took:.1f}s after the owner was killed")
    assert a.calls(sid) == [sid, sid]  # the one documented case of a second run
    assert stored[sid][0] == "done" and stored[sid][2] == 1  # and the inbox shows it


def test_sigkill_under_load_loses_no_acknowledged_message(
    cluster: PrivateCluster, tmp_path: Path
) -> None:
    proc = serve(tmp_path / "sk", cluster.url)
    exotel = Exotel()

    async def load() -> None:
        async with httpx.AsyncClient(timeout=5) as http:

            async def client(n: int) -> None:
                while proc.process is not None and proc.process.poll() is None:
                    sid = new_sid(f"k{n}")
                    await exotel.send(http, proc.url, sid, f"ECHO {sid}")

            async def killer() -> None:
                await wait_for(lambda: len(exotel.ok()) >= 150, timeout=30)
                proc.kill()

            await asyncio.gather(killer(), *(client(n) for n in range(16)))

    stored = _run_then_read(proc, load, cluster.url)
    acknowledged = exotel.ok()
    print(f"{len(acknowledged)} acknowledged before SIGKILL")
    _assert_every_200_is_stored(exotel, stored)


ECHO_RULES = """
[[rules]]
keyword = "ECHO"
reply = "{rest}"
"""


def test_rules_replies_through_a_crash_are_answered_only_once_stored(
    cluster: PrivateCluster, tmp_path: Path
) -> None:
    """A rules file's replies (no user code: the claim does not wait for the disk, its
    answer's commit does, and with it the claim's): a crash under load never leaves a 200
    whose row or bytes are not stored."""
    proc = serve(tmp_path / "rules", cluster.url, rules=ECHO_RULES)
    exotel = Exotel()
    sids: list[str] = []
    crashed = asyncio.Event()
    crashed_at = [0]  # how many SMS had been sent when the cluster crashed

    async def load() -> None:
        async with httpx.AsyncClient(timeout=10) as http:

            async def client(n: int) -> None:
                # Until the crash, and as many SMS again after it as before it.
                while not crashed.is_set() or len(sids) < 2 * crashed_at[0]:
                    sid = new_sid(f"r{n}")
                    sids.append(sid)
                    await exotel.send(http, proc.url, sid, f"ECHO {sid}")

            async def crasher() -> None:
                await wait_for(lambda: len(exotel.ok()) >= 100, timeout=30)
                crashed_at[0] = len(sids)
                cluster.crash()
                crashed.set()
                # Down until requests have met it: answered 503, none of them a guess.
                await wait_for(lambda: len(exotel.ok()) < len(exotel.answers), timeout=30)
                cluster.start()

            await asyncio.gather(crasher(), *(client(n) for n in range(16)))
            for sid in sids:  # Exotel retrying what was not answered
                await exotel.until_answered(http, proc.url, sid, f"ECHO {sid}")

    stored = _run_then_read(proc, load, cluster.url)
    first = _first_answers(exotel, sids)
    print(f"first answers of {len(sids)} rules SMS around a crash: {dict(first)}")
    assert first[200] >= 100
    assert len(first) > 1, "no request met the crash: the test did not test"
    _assert_every_200_is_stored(exotel, stored)
    assert all(stored[sid][1] == sid for sid in sids), "a stored reply is not the rule's"


def test_webhook_replies_are_queued_and_sent_once_through_a_crash(
    cluster: PrivateCluster, tmp_path: Path
) -> None:
    from fake_exotel import fake_exotel

    with fake_exotel(tmp_path) as fake:
        proc = serve(tmp_path / "wh", cluster.url, **fake.settings())
        sids = [new_sid("wh") for _ in range(40)]
        first: dict[str, int | None] = {}

        async def post(http: httpx.AsyncClient, sid: str) -> int | None:
            body = {
                "SmsSid": sid,
                "Sender": "9052161119",
                "ReceivedOn": "56070",
                "MessageBody": f"SLOWECHO {sid}",
            }
            try:
                return (await http.post(f"{proc.url}/exotel/webhook", json=body)).status_code
            except httpx.HTTPError:
                return None

        async def run() -> None:
            async with httpx.AsyncClient(timeout=10) as http:
                before = len(proc.calls())
                sent = {sid: asyncio.create_task(post(http, sid)) for sid in sids}
                await wait_for(lambda: len(proc.calls()) > before)
                cluster.crash()
                cluster.start()
                for sid, task in sent.items():
                    first[sid] = await task
                for sid in sids:  # Exotel retrying every webhook that was not a 200
                    deadline = time.monotonic() + 20
                    while await post(http, sid) != 200:
                        assert time.monotonic() < deadline, f"{sid} never accepted"
                        await asyncio.sleep(0.2)

        try:
            asyncio.run(run())
            want = {f"{sid} ({sid})" for sid in sids}
            deadline = time.monotonic() + 30
            while {m["Body"] for m in fake.messages()} != want:
                assert time.monotonic() < deadline, "not every reply was sent"
                time.sleep(0.1)
        finally:
            proc.stop()
        bodies = collections.Counter(m["Body"] for m in fake.messages())
        print(f"webhooks through a crash: first answers {collections.Counter(first.values())}")
        assert collections.Counter(first.values())[503] > 0, "the crash met no webhook"
        assert all(n == 1 for n in bodies.values()), "a reply was sent twice"
        assert all(n == 1 for n in collections.Counter(proc.calls()).values())
