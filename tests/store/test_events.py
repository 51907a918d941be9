"""Events are written with the rows they describe, and handed out in order: both stores."""

from __future__ import annotations

import asyncio
import time

import pytest

from exosms.result import Result
from exosms.store import ClaimLost, Completion, NewMessage
from exosms.store.events import Failure, Route
from exosms.store.opening import OpenedStore

pytestmark = pytest.mark.anyio
A, B = "+919052161119", "+919812345678"


def message(sid: str, sender: str = A, at: float | None = None) -> NewMessage:
    return NewMessage(
        sms_sid=sid,
        sender=sender,
        sender_raw=sender,
        recipient="56070",
        recipient_raw="56070",
        body="ORDER 12",
        query=f"SmsSid={sid}",
        date_raw="2026-12-01 10:00:00",
        exotel_date=None,
        received_at=at if at is not None else time.time(),
        method="GET",
    )


async def answered(store: OpenedStore, sid: str, sender: str = A) -> None:
    await store.claim(message(sid, sender), "me", time.time() + 5)
    await store.complete(
        Completion(sid, Result("Order 12 ships today", "order", "replied"), time.time())
    )


async def kinds(store: OpenedStore) -> list[tuple[str, str]]:
    rows = await store.events.reports.recent(100)
    return [(event_id, kind) for _, event_id, kind, _, _, _ in reversed(rows)]


async def test_a_message_and_its_answer_each_write_one_event_in_their_transaction(
    store: OpenedStore,
) -> None:
    await store.claim(message("e1"), "me", time.time() + 5)
    await store.claim(message("e1"), "me", time.time() + 5)  # a retry: no second event
    assert await kinds(store) == [("e1:received", "sms.received")]
    await store.complete(Completion("e1", Result("hi", "greet", "replied"), time.time()))
    assert await kinds(store) == [("e1:received", "sms.received"), ("e1:answered", "sms.answered")]
    with pytest.raises(ClaimLost):  # no message, no answer: and no event
        await store.complete(Completion("nobody", Result("x", None, "replied"), time.time()))
    assert len(await kinds(store)) == 2


async def test_opt_outs_and_opt_ins_are_events(store: OpenedStore) -> None:
    await store.set_optout(A, "*", True)
    await store.set_optout(A, "*", False)
    assert [kind for _, kind in await kinds(store)] == ["sms.opted_out", "sms.opted_in"]
    found = await store.events.load([pk for pk, *_ in await store.events.reports.recent(2)])
    opted = next(e for e in found.values() if e.type == "sms.opted_out")
    assert opted.sender == A and opted.data is not None and '"source"' in opted.data


async def test_each_sender_is_leased_as_a_run_from_its_oldest_and_a_failure_holds_it(
    store: OpenedStore,
) -> None:
    for sid, sender in (("a1", A), ("b1", B), ("a2", A)):
        await answered(store, sid, sender)
    events = store.events
    assert (
        await events.fan_out([Route("crm"), Route("late", events=frozenset({"sms.answered"}))]) == 6
    )
    assert await events.fan_out([Route("crm")]) == 0  # each event is handed out once
    leased = await events.lease("crm", 100, 30)
    by_sender: dict[str, list[int]] = {}
    for lease in leased:
        by_sender.setdefault(lease.sender, []).append(lease.event)
    assert [len(v) for v in (by_sender[A], by_sender[B])] == [4, 2]
    assert by_sender[A] == sorted(by_sender[A])
    assert await events.lease("crm", 100, 30) == []  # all leased
    # A's oldest fails: the rest of A's run goes back, B's is delivered.
    a_rows = [lease for lease in leased if lease.sender == A]
    b_rows = [lease.id for lease in leased if lease.sender == B]
    await events.settle(
        delivered=b_rows,
        failed=[Failure(a_rows[0].id, "answered 500", time.time() + 60, dead=False)],
        released=[lease.id for lease in a_rows[1:]],
    )
    assert await events.lease("crm", 100, 30) == []  # A waits for its oldest, in order
    await events.settle(failed=[Failure(a_rows[0].id, "answered 500", time.time() - 1, False)])
    again = await events.lease("crm", 100, 30)
    assert [lease.id for lease in again] == [lease.id for lease in a_rows]
    late = await events.lease("late", 100, 30)
    assert len(late) == 3  # the other destination's filter: answers only
    health = {h.destination: h for h in await events.reports.health(["crm", "late"])}
    assert (health["crm"].pending, health["crm"].delivered) == (4, 2)
    assert health["crm"].last_error == "answered 500"


async def test_two_processes_never_lease_one_senders_events_at_once(store: OpenedStore) -> None:
    for n in range(30):
        await answered(store, f"c{n}", [A, B][n % 2])
    await store.events.fan_out([Route("crm")])
    first, second = await asyncio.gather(
        store.events.lease("crm", 100, 30), store.events.lease("crm", 100, 30)
    )
    assert len(first) + len(second) == 60
    senders = {lease.sender for lease in first} & {lease.sender for lease in second}
    assert not senders, "one sender's events were leased by two takers at once"


async def test_replay_queues_the_period_again_and_prune_removes_old_events(
    store: OpenedStore,
) -> None:
    await answered(store, "r1")
    await store.events.fan_out([])  # handed out while no destination was configured
    assert await store.events.lease("crm", 100, 30) == []
    assert await store.events.replay([Route("crm")], since=time.time() - 60) == 2
    assert len(await store.events.lease("crm", 100, 30)) == 2
    assert await store.events.prune(time.time() + 1) == 2
    assert await store.events.reports.recent(10) == []


def test_a_rule_filter_matches_rule_names_whatever_their_case() -> None:
    route = Route("crm", rules=frozenset({"order"}))
    assert route.takes("sms.answered", "56070", "Order", "replied")
    assert not route.takes("sms.answered", "56070", "hours", "replied")
    assert not route.takes("sms.received", "56070", None, None)  # not answered yet
