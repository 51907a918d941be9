"""The store contract: every store (SQLite now, PostgreSQL later) must pass all of this."""

from __future__ import annotations

import time

import pytest

from exosms.store import ClaimStatus, Completion, NewMessage, Store

pytestmark = pytest.mark.anyio


def message(sid: str, body: str = "hello", at: float | None = None) -> NewMessage:
    return NewMessage(
        sms_sid=sid,
        sender="+919052161119",
        sender_raw="09052161119",
        recipient="56070",
        recipient_raw="56070",
        body=body,
        query=f"SmsSid={sid}&From=09052161119&To=56070&Body={body}",
        date_raw="2026-11-26 10:00:00",
        exotel_date=1_795_000_000.0,
        received_at=at if at is not None else time.time(),
        method="HEAD",
    )


def done(sid: str, reply: str | None, outcome: str = "replied") -> Completion:
    return Completion(sid, reply, "echo", outcome, 1.5, None, time.time())


async def test_first_claim_wins_and_stores_the_message(store: Store) -> None:
    claim = await store.claim(message("s1", "नमस्ते 😀"), "me", time.time() + 5)
    assert claim.status is ClaimStatus.CLAIMED
    stored = await store.lookup("s1")
    assert stored is not None
    assert (stored.body, stored.sender_raw, stored.state, stored.fetch_count) == (
        "नमस्ते 😀",
        "09052161119",
        "pending",
        1,
    )
    assert stored.query.startswith("SmsSid=s1&")
    assert stored.method == "HEAD"


async def test_a_live_claim_makes_others_wait(store: Store) -> None:
    expires = time.time() + 5
    await store.claim(message("s2"), "me", expires)
    claim = await store.claim(message("s2", "a retry"), "other", time.time() + 5)
    assert claim.status is ClaimStatus.BUSY
    assert claim.expires == pytest.approx(expires)
    stored = await store.lookup("s2")
    assert stored is not None and stored.body == "hello"  # the first copy is kept


async def test_an_expired_claim_is_taken_over(store: Store) -> None:
    await store.claim(message("s3"), "dead", time.time() - 1)
    claim = await store.claim(message("s3"), "alive", time.time() + 5)
    assert claim.status is ClaimStatus.CLAIMED


async def test_the_answer_is_replayed_and_fetches_counted(store: Store) -> None:
    await store.claim(message("s4"), "me", time.time() + 5)
    assert await store.complete(done("s4", "your order is on its way")) == (
        "your order is on its way"
    )
    claim = await store.claim(message("s4"), "other", time.time() + 5)
    assert (claim.status, claim.reply) == (ClaimStatus.ANSWERED, "your order is on its way")
    store.record_fetch("s4", time.time())
    await store.ping()
    stored = await store.lookup("s4")
    assert stored is not None
    assert stored.state == "done"
    assert stored.outcome == "replied"
    assert stored.rule == "echo"
    assert stored.handler_ms == 1.5
    assert stored.answered_at is not None


async def test_no_reply_is_stored_as_none(store: Store) -> None:
    await store.claim(message("s5"), "me", time.time() + 5)
    assert await store.complete(done("s5", None, "no_reply")) is None
    claim = await store.claim(message("s5"), "other", time.time() + 5)
    assert (claim.status, claim.reply) == (ClaimStatus.ANSWERED, None)


async def test_the_first_completion_stands(store: Store) -> None:
    await store.claim(message("s6"), "slow", time.time() - 1)
    await store.claim(message("s6"), "fast", time.time() + 5)  # takes over
    assert await store.complete(done("s6", "fast answer")) == "fast answer"
    # The slow owner finishes later: it must adopt the stored answer, not overwrite it.
    assert await store.complete(done("s6", "slow answer")) == "fast answer"
    stored = await store.lookup("s6")
    assert stored is not None and stored.reply == "fast answer"


async def test_recent_is_newest_first(store: Store) -> None:
    for n in range(5):
        await store.claim(message(f"r{n}"), "me", time.time() + 5)
    recent = await store.recent(3)
    assert [m.sms_sid for m in recent] == ["r4", "r3", "r2"]
    assert await store.lookup("missing") is None


async def test_many_writes_at_once_share_commits(store: Store) -> None:
    import asyncio

    claims = await asyncio.gather(
        *(store.claim(message(f"g{n}"), "me", time.time() + 5) for n in range(200))
    )
    assert all(c.status is ClaimStatus.CLAIMED for c in claims)
    assert len(await store.recent(500)) == 200
