"""The reply engine with a real SQLite store: exactly once, deadlines, fallbacks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from exosms import IncomingSms, Match, Reply, Router
from exosms.engine import ReplyEngine
from exosms.exotel.applet import AppletRequest
from exosms.outcomes import Outcome
from exosms.result import Result
from exosms.store import Completion, Store, StoreUnavailable, open_store
from exosms.store.migrate import upgrade_async

pytestmark = pytest.mark.anyio


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    url = f"sqlite:///{tmp_path / 'engine.db'}"
    await upgrade_async(url)
    opened = open_store(url)
    await opened.open()
    yield opened
    await opened.close()


def applet(sid: str, body: str, sender: str = "09052161119") -> AppletRequest:
    return AppletRequest(sid, sender, "56070", "2026-11-26 10:00:00", body, f"SmsSid={sid}")


class Calls:
    def __init__(self) -> None:
        self.seen: list[str] = []


def counting_router(calls: Calls) -> Router:
    router = Router()

    @router.keyword("SLOW")
    async def slow(sms: IncomingSms, match: Match) -> str:
        calls.seen.append(sms.sms_sid)
        await asyncio.sleep(0.1)
        return f"slow {match.rest}"

    @router.keyword("NAP")
    async def nap(sms: IncomingSms, match: Match) -> str:
        calls.seen.append(sms.sms_sid)
        await asyncio.sleep(10)
        return "late"

    @router.keyword("STUBBORN")
    async def stubborn(sms: IncomingSms, match: Match) -> str:
        calls.seen.append(sms.sms_sid)
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await asyncio.sleep(10)  # ignores cancellation: must not hold the answer up
        return "late"

    @router.keyword("FAIL")
    def fail(sms: IncomingSms, match: Match) -> str:
        calls.seen.append(sms.sms_sid)
        raise ValueError("no such order")

    @router.keyword("SYNC")
    def sync(sms: IncomingSms, match: Match) -> Reply:
        calls.seen.append(sms.sms_sid)
        return Reply(f"{sms.sender} {sms.exotel_date.isoformat() if sms.exotel_date else '-'}")

    @router.keyword("EMPTY")
    async def empty(sms: IncomingSms, match: Match) -> str:
        calls.seen.append(sms.sms_sid)
        return ""

    @router.keyword("SURROGATE")
    async def surrogate(sms: IncomingSms, match: Match) -> str:
        return "bad \udc80 text\x00"

    return router


async def test_concurrent_requests_call_the_handler_once(store: Store) -> None:
    calls = Calls()
    engine = ReplyEngine(store, counting_router(calls))
    answers = await asyncio.gather(
        *(engine.receive(applet("c1", "SLOW go"), "GET") for _ in range(50))
    )
    assert calls.seen == ["c1"]
    assert {a.body for a in answers} == {b"slow go"}
    assert sorted(a.outcome for a in answers).count(Outcome.REPLIED) == 1
    stored = await store.lookup("c1")
    assert stored is not None and stored.reply == "slow go"


async def test_a_new_engine_replays_from_the_database(store: Store) -> None:
    calls = Calls()
    first = ReplyEngine(store, counting_router(calls))
    await first.receive(applet("c2", "SLOW x"), "HEAD")
    restarted = ReplyEngine(store, counting_router(calls))  # an empty cache: a new process
    answer = await restarted.receive(applet("c2", "SLOW x"), "GET")
    assert answer.body == b"slow x"
    assert answer.outcome == Outcome.REPLAYED
    assert calls.seen == ["c2"]
    # Fetches are counted off the request path: wait until the count is stored.
    deadline = time.monotonic() + 5
    while (stored := await store.lookup("c2")) is None or stored.fetch_count < 2:
        assert time.monotonic() < deadline, stored
        await asyncio.sleep(0.01)
    assert stored.fetch_count == 2


async def test_waits_for_another_process_then_replays_its_answer(store: Store) -> None:
    calls = Calls()
    engine = ReplyEngine(store, counting_router(calls))
    other = ReplyEngine(store, Router())
    await store.claim((await _message(other, "c3")), "other-process", time.time() + 5)

    async def other_finishes() -> None:
        await asyncio.sleep(0.15)
        await store.complete(
            Completion("c3", Result("from the other process", "x", "replied", 1), time.time())
        )

    _, answer = await asyncio.gather(
        other_finishes(), engine.receive(applet("c3", "SLOW y"), "GET")
    )
    assert answer.body == b"from the other process"
    assert calls.seen == []


async def test_takes_over_a_dead_process_claim(store: Store) -> None:
    calls = Calls()
    engine = ReplyEngine(store, counting_router(calls))
    await store.claim(await _message(engine, "c4"), "dead-process", time.time() + 0.1)
    answer = await engine.receive(applet("c4", "SLOW z"), "GET")
    assert answer.body == b"slow z"
    assert calls.seen == ["c4"]


@pytest.mark.parametrize("body", ["NAP", "STUBBORN"])
async def test_deadline_gives_the_fallback_fast(store: Store, body: str) -> None:
    calls = Calls()
    engine = ReplyEngine(store, counting_router(calls), deadline=0.2, fallback="Sorry, try later")
    started = time.monotonic()
    answer = await engine.receive(applet("d-" + body, body), "GET")
    assert time.monotonic() - started < 0.6
    assert answer.body == b"Sorry, try later"
    stored = await store.lookup("d-" + body)
    assert stored is not None
    assert stored.outcome == Outcome.FALLBACK_TIMEOUT
    assert stored.error == "handler ran past the 0.2s deadline"
    assert stored.rule == body.lower()


async def test_a_failing_handler_gives_the_fallback_and_records_why(store: Store) -> None:
    engine = ReplyEngine(store, counting_router(Calls()))
    answer = await engine.receive(applet("e1", "FAIL"), "GET")
    assert answer.body == b""
    stored = await store.lookup("e1")
    assert stored is not None
    assert stored.outcome == Outcome.FALLBACK_ERROR
    assert stored.error == "ValueError: no such order"


async def test_sync_handlers_get_normalised_numbers_and_parsed_date(store: Store) -> None:
    engine = ReplyEngine(store, counting_router(Calls()))
    answer = await engine.receive(applet("n1", "SYNC", sender="+919052161119"), "GET")
    assert answer.body == b"+919052161119 2026-11-26T10:00:00+05:30"
    stored = await store.lookup("n1")
    assert stored is not None
    assert stored.exotel_date == datetime(2026, 11, 26, 4, 30, tzinfo=UTC).timestamp()


async def test_empty_reply_and_no_route_mean_no_reply(store: Store) -> None:
    engine = ReplyEngine(store, counting_router(Calls()))
    assert (await engine.receive(applet("x1", "EMPTY"), "GET")).body == b""
    no_route = await engine.receive(applet("x2", "unknown words"), "GET")
    assert (no_route.body, no_route.outcome) == (b"", Outcome.NO_REPLY)
    stored = await store.lookup("x2")
    assert stored is not None and (stored.rule, stored.reply) == (None, None)


async def test_unencodable_reply_text_is_repaired_not_crashed(store: Store) -> None:
    engine = ReplyEngine(store, counting_router(Calls()))
    answer = await engine.receive(applet("u1", "SURROGATE"), "GET")
    assert answer.body == "bad ? text\ufffd".encode()
    stored = await store.lookup("u1")
    assert stored is not None and stored.reply == "bad ? text\ufffd"


async def test_a_closed_store_is_reported_not_hung(store: Store) -> None:
    engine = ReplyEngine(store, counting_router(Calls()))
    await store.close()
    with pytest.raises(StoreUnavailable):
        await asyncio.wait_for(engine.receive(applet("z1", "SLOW"), "GET"), 2)


async def test_a_database_that_cannot_be_opened_is_reported(tmp_path: Path) -> None:
    (tmp_path / "adir.db").mkdir()  # a directory where the file should be
    store = open_store(f"sqlite:///{tmp_path / 'adir.db'}")
    with pytest.raises(StoreUnavailable, match="cannot open"):
        await store.open()
    with pytest.raises(StoreUnavailable):
        await store.ping()


async def _message(engine: ReplyEngine, sid: str):  # type: ignore[no-untyped-def]
    from exosms.store import NewMessage

    return NewMessage(
        sid, "+919052161119", "9052161119", "56070", "56070", "x", "", "", None, time.time(), "GET"
    )
