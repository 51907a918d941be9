"""The store contract: every store (SQLite and PostgreSQL) must pass all of this."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from exosms.result import Result
from exosms.store import ClaimLost, ClaimStatus, Completion, NewMessage
from exosms.store.opening import OpenedStore

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
    return Completion(sid, Result(reply, "echo", outcome, 1.5), time.time())


async def test_first_claim_wins_and_stores_the_message(store: OpenedStore) -> None:
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


async def test_a_claim_stores_every_field_of_the_message_with_or_without_guards(
    store: OpenedStore,
) -> None:
    from dataclasses import asdict

    from exosms.guards import GuardQuery

    for sid, guard in (("all1", None), ("all2", GuardQuery(None, 300))):
        sent = message(sid, "ORDER 77 नमस्ते")
        assert (await store.claim(sent, "me", time.time() + 5, guard)).status is ClaimStatus.CLAIMED
        stored = await store.lookup(sid)
        assert stored is not None
        assert {k: getattr(stored, k) for k in asdict(sent)} == asdict(sent)
        assert (stored.state, stored.fetch_count, stored.last_fetch_at) == (
            "pending",
            1,
            sent.received_at,
        )


async def test_postgres_one_round_trip_claim_inserts_the_columns_of_a_new_message(
    pg_database: str,
) -> None:
    """Migration 0022's function lists NewMessage's columns as of its revision: a change to
    them must replace it."""
    import asyncpg

    from exosms.store.schema import NEW_MESSAGE_COLUMNS

    conn = await asyncpg.connect(pg_database)
    try:
        source = await conn.fetchval("SELECT pg_get_functiondef('exosms_claim_new'::regproc)")
    finally:
        await conn.close()
    listed = " ".join(source.split("INSERT INTO messages (", 1)[1].split(")", 1)[0].split())
    assert listed.startswith(", ".join(NEW_MESSAGE_COLUMNS) + ", state,")


async def test_postgres_connections_go_back_to_the_pool_as_they_were_made(
    pg_database: str,
) -> None:
    """The pool hands connections back without asyncpg's reset query (a round trip per
    call), so the hot path must leave no session state: after every kind of claim and
    answer, each pooled connection still commits synchronously, holds no advisory lock and
    is in no transaction. (A rules reply's claim turns synchronous commit off for its own
    transaction only: a session-wide setting would make later claims lose durability.)"""
    import asyncio

    from exosms.guards import OPT_OUT, GuardQuery
    from exosms.store.postgres import PostgresStore
    from exosms.store.urls import parse_database_url

    store = PostgresStore(parse_database_url(pg_database), pool_size=2)
    await store.open()
    try:
        guarded = GuardQuery(None, 300)

        def finish(sid: str) -> Callable[[object], Completion]:
            return lambda _state: done(sid, "Shop opens at 10. -ACME")

        await asyncio.gather(
            *(
                store.claim_and_complete(
                    message(f"pr{n}"), "me", time.time() + 5, guarded, finish(f"pr{n}")
                )
                for n in range(6)
            ),
            store.claim(
                message("pr-stop", "STOP"), "me", time.time() + 5, GuardQuery(OPT_OUT, 300)
            ),
            store.claim(message("pr-plain"), "me", time.time() + 5, guarded),
        )
        assert await store.complete(done("pr-plain", "hi")) == "hi"
        with pytest.raises(ClaimLost):
            await store.complete(done("pr-never", "x"))
        pool = store._require_pool()
        held = [await pool.acquire() for _ in range(2)]
        try:
            for conn in held:
                assert await conn.fetchval("SHOW synchronous_commit") == "on"
                locks = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                assert await conn.fetchval(locks + " AND pid = pg_backend_pid()") == 0
                assert not conn.is_in_transaction()
        finally:
            for conn in held:
                await pool.release(conn)
    finally:
        await store.close()


async def test_an_answer_queues_its_reply_once_in_its_own_transaction(store: OpenedStore) -> None:
    from exosms.store import OutboxWrite

    await store.claim(message("q1"), "me", time.time() + 5)
    queued = OutboxWrite("+919052161119", "Order 7 is out. -ACME", "1107161234567890123", 1)
    first = Completion("q1", Result("Order 7 is out. -ACME", "order", "replied"), time.time())
    first.outbox = queued
    assert await store.complete(first) == "Order 7 is out. -ACME"
    other = Completion("q1", Result("something else", "order", "replied"), time.time())
    other.outbox = OutboxWrite("+919052161119", "something else")
    assert await store.complete(other) == "Order 7 is out. -ACME"  # the first answer stands
    rows = await store.outbox.recent(10)
    assert [(r.message_sid, r.body, r.template_id, r.parts, r.status) for r in rows] == [
        ("q1", "Order 7 is out. -ACME", "1107161234567890123", 1, "pending")
    ]
    lost = Completion("never-claimed", Result("x", "order", "replied"), time.time())
    lost.outbox = OutboxWrite("+919052161119", "x")
    with pytest.raises(ClaimLost):
        await store.complete(lost)
    assert len(await store.outbox.recent(10)) == 1  # nothing queued for an answer not stored


async def test_a_claim_and_its_answer_in_one_call(store: OpenedStore) -> None:
    from exosms.guards import OPT_OUT, GuardQuery, GuardState
    from exosms.store import OutboxWrite

    seen: list[GuardState | None] = []

    def finish(state: GuardState | None) -> Completion:
        seen.append(state)
        answered = Completion("one1", Result("Shop opens at 10. -ACME", "hours", "replied"), 1.0)
        answered.outbox = OutboxWrite("+919052161119", "Shop opens at 10. -ACME")
        return answered

    claim, completion = await store.claim_and_complete(
        message("one1", "HOURS"), "me", time.time() + 5, GuardQuery(None, 300), finish
    )
    assert claim.status is ClaimStatus.CLAIMED and claim.reply == "Shop opens at 10. -ACME"
    assert completion is not None and completion.result.rule == "hours"
    assert len(seen) == 1 and seen[0] is not None and seen[0].opted_out is False
    stored = await store.lookup("one1")
    assert stored is not None and (stored.state, stored.reply) == ("done", claim.reply)
    assert [r.message_sid for r in await store.outbox.recent(10)] == ["one1"]
    # Asked again (a retry, another process): the stored answer, nothing worked out again.
    again, nothing = await store.claim_and_complete(
        message("one1", "HOURS"), "other", time.time() + 5, None, finish
    )
    assert (again.status, again.reply, nothing, len(seen)) == (
        ClaimStatus.ANSWERED,
        "Shop opens at 10. -ACME",
        None,
        1,
    )

    # The guards' change is made in the same write, before finish sees the standing.
    def confirm(state: GuardState | None) -> Completion:
        seen.append(state)
        return done("one2", "You will get no more SMS.")

    stopped, _ = await store.claim_and_complete(
        message("one2", "STOP"), "me", time.time() + 5, GuardQuery(OPT_OUT, 300), confirm
    )
    assert stopped.status is ClaimStatus.CLAIMED
    assert seen[-1] is not None and (seen[-1].opted_out, seen[-1].opt_changed) == (True, True)
    assert [o.sender for o in await store.list_optouts()] == ["+919052161119"]

    def broken(state: GuardState | None) -> Completion:
        raise ValueError("no such template")

    # A failure in working it out is raised; the claim stays, the owner's to take again.
    with pytest.raises(ValueError, match="no such template"):
        await store.claim_and_complete(message("one3"), "me", time.time() + 5, None, broken)
    pending = await store.lookup("one3")
    assert pending is not None and pending.state == "pending"
    retaken = await store.claim(message("one3"), "me", time.time() + 5)
    assert retaken.status is ClaimStatus.CLAIMED


async def test_a_live_claim_makes_others_wait(store: OpenedStore) -> None:
    expires = time.time() + 5
    await store.claim(message("s2"), "me", expires)
    claim = await store.claim(message("s2", "a retry"), "other", time.time() + 5)
    assert claim.status is ClaimStatus.BUSY
    assert claim.expires == pytest.approx(expires)
    stored = await store.lookup("s2")
    assert stored is not None and stored.body == "hello"  # the first copy is kept


async def test_an_expired_claim_of_an_owner_without_a_lease_is_taken_over(
    store: OpenedStore,
) -> None:
    await store.claim(message("s3"), "dead", time.time() - 1)
    claim = await store.claim(message("s3"), "alive", time.time() + 5)
    assert (claim.status, claim.taken_over) == (ClaimStatus.CLAIMED, True)
    stored = await store.lookup("s3")
    assert stored is not None and stored.takeovers == 1


async def test_a_live_lease_keeps_an_expired_claim_its_owner_s(store: OpenedStore) -> None:
    # The owner worked out its answer but could not store it (a database blip): while it
    # renews its lease, nobody else may run the handler again.
    await store.renew_lease("owner-a", time.time() + 30)
    await store.claim(message("s3b"), "owner-a", time.time() - 1)
    claim = await store.claim(message("s3b"), "owner-b", time.time() + 5)
    assert claim.status is ClaimStatus.BUSY
    await store.drop_lease("owner-a")  # stopped: its claims may go
    claim = await store.claim(message("s3b"), "owner-b", time.time() + 5)
    assert (claim.status, claim.taken_over) == (ClaimStatus.CLAIMED, True)


async def test_an_owner_retakes_its_own_claim_and_released_claims_are_free(
    store: OpenedStore,
) -> None:
    await store.renew_lease("owner-a", time.time() + 30)
    await store.claim(message("s3c"), "owner-a", time.time() + 5)
    again = await store.claim(message("s3c"), "owner-a", time.time() + 5)
    assert (again.status, again.taken_over) == (ClaimStatus.CLAIMED, False)
    await store.release(["s3c"], "owner-b")  # not its claim: nothing happens
    assert (await store.claim(message("s3c"), "owner-b", time.time() + 5)).status is (
        ClaimStatus.BUSY
    )
    await store.release(["s3c"], "owner-a")
    free = await store.claim(message("s3c"), "owner-b", time.time() + 5)
    assert (free.status, free.taken_over) == (ClaimStatus.CLAIMED, False)
    stored = await store.lookup("s3c")
    assert stored is not None and stored.takeovers == 0


async def test_completing_a_message_that_is_not_stored_is_refused(store: OpenedStore) -> None:
    # The claim vanished (a restored or failed-over database): no guessed answer.
    with pytest.raises(ClaimLost):
        await store.complete(done("never-claimed", None, "no_reply"))
    assert await store.lookup("never-claimed") is None


async def test_a_completion_can_be_repeated_safely(store: OpenedStore) -> None:
    await store.claim(message("s3d"), "me", time.time() + 5)
    assert await store.complete(done("s3d", "first")) == "first"
    assert await store.complete(done("s3d", "first")) == "first"  # a retry after a doubt


async def test_the_answer_is_replayed_and_fetches_counted(store: OpenedStore) -> None:
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


async def test_no_reply_is_stored_as_none(store: OpenedStore) -> None:
    await store.claim(message("s5"), "me", time.time() + 5)
    assert await store.complete(done("s5", None, "no_reply")) is None
    claim = await store.claim(message("s5"), "other", time.time() + 5)
    assert (claim.status, claim.reply) == (ClaimStatus.ANSWERED, None)


async def test_the_first_completion_stands(store: OpenedStore) -> None:
    await store.claim(message("s6"), "slow", time.time() - 1)
    await store.claim(message("s6"), "fast", time.time() + 5)  # takes over
    assert await store.complete(done("s6", "fast answer")) == "fast answer"
    # The slow owner finishes later: it must adopt the stored answer, not overwrite it.
    assert await store.complete(done("s6", "slow answer")) == "fast answer"
    stored = await store.lookup("s6")
    assert stored is not None and stored.reply == "fast answer"


async def test_recent_is_newest_first(store: OpenedStore) -> None:
    for n in range(5):
        await store.claim(message(f"r{n}"), "me", time.time() + 5)
    recent = await store.recent(3)
    assert [m.sms_sid for m in recent] == ["r4", "r3", "r2"]
    assert await store.lookup("missing") is None


async def test_many_writes_at_once_share_commits(store: OpenedStore) -> None:
    import asyncio

    claims = await asyncio.gather(
        *(store.claim(message(f"g{n}"), "me", time.time() + 5) for n in range(200))
    )
    assert all(c.status is ClaimStatus.CLAIMED for c in claims)
    assert len(await store.recent(500)) == 200


async def test_templates_round_trip_and_version(store: OpenedStore) -> None:
    from exosms.dlt import Template

    before = await store.templates_version()
    template = Template(
        "1107161234567890123",
        "Dear {#var#}, hi. -ACME",
        entity_id="1101234567890123456",
        name="hi",
        headers=("ACMEIN",),
        url_whitelist=("https://acme.in/",),
    )
    assert await store.save_templates([template]) == (1, 0)
    assert await store.save_templates([template]) == (0, 0)
    changed = Template("1107161234567890123", "Dear {#var#}, hello. -ACME", name="hi")
    assert await store.save_templates([changed]) == (0, 1)
    assert await store.load_templates() == [changed]
    assert await store.templates_version() != before


async def test_sessions_are_saved_with_the_answer_and_expire(store: OpenedStore) -> None:
    from exosms.store import SessionWrite

    await store.claim(message("ss1"), "me", time.time() + 5)
    session = SessionWrite("+919052161119", "56070", '{"state": "menu"}', time.time() + 60)
    await store.complete(
        Completion("ss1", Result("menu", "menu", "replied", 1), time.time(), session=session)
    )
    assert await store.load_session("+919052161119", "56070") == {"state": "menu"}
    assert await store.load_session("+919052161119", "56071") is None
    await store.claim(message("ss2"), "me", time.time() + 5)
    expired = SessionWrite("+919052161119", "56070", '{"state": "x"}', time.time() - 1)
    await store.complete(
        Completion("ss2", Result(None, None, "no_reply", 1), time.time(), session=expired)
    )
    assert await store.load_session("+919052161119", "56070") is None


async def test_optouts_and_guard_counts_in_the_claim(store: OpenedStore) -> None:
    from exosms.guards import OPT_IN, OPT_OUT, GuardQuery

    plain = GuardQuery(None, 300)
    first = await store.claim(message("gq1", "hello"), "me", time.time() + 5, plain)
    assert first.guard is not None
    assert (first.guard.opted_out, first.guard.replies_10min, first.guard.repeated) == (
        False,
        0,
        False,
    )
    await store.complete(done("gq1", "hi there"))
    again = await store.claim(message("gq2", "hello"), "me", time.time() + 5, plain)
    assert again.guard is not None
    assert (again.guard.replies_10min, again.guard.replies_day, again.guard.repeated) == (
        1,
        1,
        True,
    )
    out = await store.claim(message("gq3", "STOP"), "me", time.time() + 5, GuardQuery(OPT_OUT, 300))
    assert out.guard is not None and (out.guard.opted_out, out.guard.opt_changed) == (True, True)
    twice = await store.claim(
        message("gq4", "STOP"), "me", time.time() + 5, GuardQuery(OPT_OUT, 300)
    )
    assert twice.guard is not None and twice.guard.opt_changed is False
    assert [o.sender for o in await store.list_optouts()] == ["+919052161119"]
    back = await store.claim(
        message("gq5", "START"), "me", time.time() + 5, GuardQuery(OPT_IN, 300)
    )
    assert back.guard is not None and (back.guard.opted_out, back.guard.opt_changed) == (
        False,
        True,
    )
    assert await store.set_optout("+919052161119", "*", True) is True
    assert await store.set_optout("+919052161119", "*", True) is False
    later = await store.claim(message("gq6", "x"), "me", time.time() + 5, plain)
    assert later.guard is not None and later.guard.opted_out is True
    assert await store.set_optout("+919052161119", "*", False) is True
    assert await store.list_optouts() == []


async def test_prune_deletes_old_messages_in_batches(store: OpenedStore) -> None:
    now = time.time()
    for n in range(25):
        await store.claim(message(f"old{n}", at=now - 100 * 86400), "me", now + 5)
    await store.claim(message("new1", at=now), "me", now + 5)
    assert await store.prune(now - 90 * 86400, batch=10) == 25
    assert [m.sms_sid for m in await store.recent(100)] == ["new1"]


async def test_outbox_leases_rows_once_and_records_status(store: OpenedStore) -> None:
    import asyncio

    box = store.outbox
    ids = [
        await box.enqueue(f"+9190000000{n:02d}", f"hi {n}", message_sid=f"ob{n}") for n in range(30)
    ]
    assert None not in ids
    assert await box.enqueue("+919000000000", "again", message_sid="ob0") is None  # once per SMS
    # Two workers (as two processes would) lease at the same time: no row goes to both.
    first, second = await asyncio.gather(box.lease_due(20, 60), box.lease_due(20, 60))
    leased = [r.id for r in first] + [r.id for r in second]
    assert len(leased) == len(set(leased)) == 30
    assert await box.lease_due(10, 60) == []  # all are leased
    row = first[0]
    await box.mark_sent(row.id, "exo-1", "1107161234567890123")
    await box.mark_retry(first[1].id, "Exotel answered 503", time.time() - 1)
    await box.mark_failed(first[2].id, "Exotel answered 400: bad To")
    again = await box.lease_due(10, 60)
    assert [r.id for r in again] == [first[1].id]  # due again after its retry time
    assert (
        await box.record_status(
            {
                "SmsSid": "exo-1",
                "Status": "failed-dnd",
                "SmsUnits": "2",
                "DetailedStatusCode": "23082",
            }
        )
        == row.id
    )
    # A row named by a verified CustomField (the endpoint checks its signature).
    assert await box.record_status({"SmsSid": "elsewhere", "Status": "sent"}, row.id) == row.id
    assert (
        await box.record_status({"SmsSid": "elsewhere", "CustomField": f"exosms-{row.id}"}) is None
    )
    assert await box.record_status({"SmsSid": "unknown", "Status": "sent"}) is None
    recent = {r.id: r for r in await box.recent(50)}
    assert (recent[row.id].status, recent[row.id].exotel_sid) == ("sent", "exo-1")
    # failed_dnd was final: the later "sent" changed nothing.
    assert (recent[row.id].delivery_status, recent[row.id].sms_units) == ("failed_dnd", 2)
    assert recent[first[2].id].last_error == "Exotel answered 400: bad To"
    assert [e["SmsSid"] for e in await box.unknown_events()] == ["elsewhere", "unknown"]


async def test_outbox_leases_the_oldest_due_rows_expired_leases_among_them(
    store: OpenedStore,
) -> None:
    box = store.outbox
    ids = [await box.enqueue(f"+9190000002{n:02d}", f"due {n}") for n in range(6)]
    # The oldest put off for a minute; the next two taken by a worker whose lease ran out.
    later = await box.lease_due(1, 60)
    await box.mark_retry(later[0].id, "Exotel answered 503", time.time() + 60)
    assert [r.id for r in await box.lease_due(2, -1)] == ids[1:3]
    # The oldest three due: both whose lease ran out, then the oldest pending one.
    assert [r.id for r in await box.lease_due(3, 60)] == ids[1:4]
    assert [r.id for r in await box.lease_due(10, 60)] == ids[4:]
    assert await box.lease_due(10, 60) == []


async def test_outbox_marks_a_group_posting_then_sent_in_one_write_each(
    store: OpenedStore,
) -> None:
    from exosms.store.outbox import Sent

    box = store.outbox
    ids = [await box.enqueue(f"+9190000001{n:02d}", f"group {n}") for n in range(3)]
    first, second, _third = await box.lease_due(10, 60)
    await box.mark_posting([first.id, second.id])
    statuses = [(await box.get(i)) for i in ids if i is not None]
    assert [r.status for r in statuses if r is not None] == ["posting", "posting", "sending"]
    await box.mark_all_sent([])  # nothing: no write, no error
    await box.mark_all_sent(
        [Sent(first.id, "exo-a", "1107161234567890123"), Sent(second.id, "exo-b", None)]
    )
    done = [await box.get(i) for i in ids if i is not None]
    assert [(r.status, r.exotel_sid, r.template_id) for r in done if r is not None] == [
        ("sent", "exo-a", "1107161234567890123"),
        ("sent", "exo-b", None),
        ("sending", None, None),
    ]
    # Each sent row is found by its own SmsSid when its callback comes.
    assert await box.record_status({"SmsSid": "exo-b", "Status": "sent"}) == second.id


async def test_a_late_reply_is_recorded_on_the_message(store: OpenedStore) -> None:
    await store.claim(message("late1"), "me", time.time() + 5)
    await store.record_late_reply("late1", "finally")
    stored = await store.lookup("late1")
    assert stored is not None and stored.late_reply == "finally"


async def test_login_checks_are_reserved_atomically(store: OpenedStore) -> None:
    import asyncio

    waits = await asyncio.gather(
        *(store.logins.reserve_login("203.0.113.9", 5, 900) for _ in range(30))
    )
    assert waits.count(0.0) == 5
    assert all(899 <= w <= 900 for w in waits if w)
    assert await store.logins.reserve_login("198.51.100.1", 5, 900) == 0.0  # per address
    await store.logins.login_succeeded("203.0.113.9")
    assert await store.logins.reserve_login("203.0.113.9", 5, 900) == 0.0


async def test_login_checks_are_also_bounded_per_account_across_addresses(
    store: OpenedStore,
) -> None:
    import asyncio

    waits = await asyncio.gather(
        *(
            store.logins.reserve_login(f"203.0.113.{n}", 5, 900, account=("admin", 12))
            for n in range(40)  # one guess from each of 40 addresses
        )
    )
    assert waits.count(0.0) == 12
    assert all(899 <= w <= 900 for w in waits if w)
    # A locked account refuses a fresh address too, and an address's own limit still holds.
    assert await store.logins.reserve_login("198.51.100.7", 5, 900, account=("admin", 12)) > 0
    assert await store.logins.reserve_login("198.51.100.7", 5, 900, account=("other", 12)) == 0
    await store.logins.login_succeeded("203.0.113.1", "admin")
    assert await store.logins.reserve_login("198.51.100.7", 5, 900, account=("admin", 12)) == 0
