"""Replies no user code makes (a rules file's `reply` and `no_reply`) are worked out inside
the claim's own write: one write per SMS, with every guarantee of the two-write way."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from exosms import IncomingSms, Match, Router
from exosms.dlt import Template, TemplateRegistry
from exosms.engine import DltGate, ReplyEngine
from exosms.exotel.applet import AppletRequest
from exosms.guards import Guards
from exosms.outcomes import Outcome
from exosms.rules import RulesContext, RulesFile
from exosms.settings_sections import GuardSettings
from exosms.store import open_store
from exosms.store.migrate import upgrade_async
from exosms.store.sqlite import SqliteStore

pytestmark = pytest.mark.anyio

RULES = """
[[rules]]
keyword = "HOURS"
reply = "We are open 10 to 8, {sender}. -ACME"

[[rules]]
keyword = "NOTED"
no_reply = true
"""


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    url = f"sqlite:///{tmp_path / 'fixed.db'}"
    await upgrade_async(url)
    opened = open_store(url)
    assert isinstance(opened, SqliteStore)
    await opened.open()
    yield opened
    await opened.close()


def rules_router() -> Router:
    router = RulesFile.from_text(RULES, "rules.toml").build(RulesContext(deadline=2.0))

    @router.keyword("CODE")
    async def code(sms: IncomingSms, match: Match) -> str:
        return f"code for {match.rest}"

    return router


def applet(sid: str, body: str, sender: str = "09052161119") -> AppletRequest:
    return AppletRequest(sid, sender, "56070", "2026-11-26 10:00:00", body, f"SmsSid={sid}")


async def test_a_fixed_reply_is_one_write_and_a_handler_s_two(store: SqliteStore) -> None:
    engine = ReplyEngine(store, rules_router())
    writes = store._writer.writes
    fixed = await engine.receive(applet("w1", "HOURS"), "HEAD")
    assert fixed.body == b"We are open 10 to 8, +919052161119. -ACME"
    assert store._writer.writes - writes == 1
    writes = store._writer.writes
    silent = await engine.receive(applet("w2", "NOTED"), "HEAD")
    assert (silent.body, store._writer.writes - writes) == (b"", 1)
    writes = store._writer.writes
    coded = await engine.receive(applet("w3", "CODE 7"), "HEAD")
    assert (coded.body, store._writer.writes - writes) == (b"code for 7", 2)
    for sid, reply, outcome in [
        ("w1", "We are open 10 to 8, +919052161119. -ACME", Outcome.REPLIED),
        ("w2", None, Outcome.NO_REPLY),
        ("w3", "code for 7", Outcome.REPLIED),
    ]:
        stored = await store.lookup(sid)
        assert stored is not None
        assert (stored.state, stored.reply, stored.outcome) == ("done", reply, outcome)


async def test_the_guards_stay_exact_on_the_one_write(store: SqliteStore) -> None:
    guards = Guards(GuardSettings(replies_per_10min=2, loop_window_seconds=0))
    engine = ReplyEngine(store, rules_router(), guards=guards)
    answers = [(await engine.receive(applet(f"g{n}", "HOURS"), "GET")) for n in range(3)]
    assert [a.outcome for a in answers] == [Outcome.REPLIED, Outcome.REPLIED, Outcome.SUPPRESSED]
    capped = await store.lookup("g2")
    assert capped is not None and (capped.reply, capped.guard) == (None, "rate_limited")
    other = "09812345678"
    stop = await engine.receive(applet("s1", "STOP", other), "GET")
    assert stop.body.startswith(b"You will get no more SMS")
    again = await engine.receive(applet("s2", "STOP", other), "GET")
    quiet = await engine.receive(applet("s3", "HOURS", other), "GET")
    assert (again.body, quiet.body, quiet.outcome) == (b"", b"", Outcome.SUPPRESSED)
    back = await engine.receive(applet("s4", "START", other), "GET")
    assert back.outcome == Outcome.OPTED_IN and back.body
    capped_too = await engine.receive(applet("s5", "HOURS", other), "GET")
    assert capped_too.body == b""  # the two confirmations were this sender's two replies
    reasons = [await store.lookup(sid) for sid in ("s3", "s5")]
    assert [r.guard if r else None for r in reasons] == ["opted_out", "rate_limited"]


async def test_a_fixed_reply_dlt_refuses_is_replaced_by_the_fallback(store: SqliteStore) -> None:
    registry = TemplateRegistry([Template("1107000000000000001", "Sorry, try later. -ACME")])
    gate = DltGate(registry=registry, mode="enforce")
    engine = ReplyEngine(store, rules_router(), gate=gate, fallback="Sorry, try later. -ACME")
    refused = await engine.receive(applet("d1", "HOURS"), "GET")
    assert (refused.body, refused.outcome) == (b"Sorry, try later. -ACME", Outcome.DLT_REFUSED)
    stored = await store.lookup("d1")
    assert stored is not None and stored.refused_reply is not None
    assert stored.refused_reply.startswith("We are open")


async def test_many_requests_for_one_sid_one_answer_and_one_queued_send(
    store: SqliteStore,
) -> None:
    engine = ReplyEngine(store, rules_router())
    other = ReplyEngine(store, rules_router())  # another process on the same database
    await other.start()
    try:
        answers = await asyncio.gather(
            *(
                (engine if n % 2 else other).receive(applet("m1", "HOURS"), "GET", queue_reply=True)
                for n in range(40)
            )
        )
    finally:
        await other.stop()
    assert {a.body for a in answers} == {b"We are open 10 to 8, +919052161119. -ACME"}
    rows = await store.outbox.recent(10)
    assert [(r.message_sid, r.body) for r in rows] == [
        ("m1", "We are open 10 to 8, +919052161119. -ACME")
    ]
    stored = await store.lookup("m1")
    assert stored is not None and stored.state == "done"
    assert time.time() - stored.received_at < 60
