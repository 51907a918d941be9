"""What the inbox reads, on both databases, from messages written by the real hot path."""

from __future__ import annotations

import time

import pytest

from exosms.result import Result
from exosms.store import Completion, NewMessage
from exosms.store.inbox import Filters
from exosms.store.opening import OpenedStore

pytestmark = pytest.mark.anyio
NOW = time.time()


def incoming(sid: str, sender: str, body: str, at: float) -> NewMessage:
    return NewMessage(
        sms_sid=sid,
        sender=sender,
        sender_raw="0" + sender[3:],
        recipient="+918041000000",
        recipient_raw="08041000000",
        body=body,
        query=f"SmsSid={sid}",
        date_raw="",
        exotel_date=None,
        received_at=at,
        method="GET",
    )


async def receive(
    store: OpenedStore,
    sid: str,
    sender: str,
    body: str,
    *,
    at: float,
    reply: str | None = "ok",
    outcome: str = "replied",
    rule: str | None = "keyword:price",
    template: str | None = None,
    dlt_reason: str | None = None,
) -> None:
    await store.claim(incoming(sid, sender, body, at), "me", time.time() + 5)
    await store.complete(
        Completion(
            sid,
            Result(reply, rule, outcome, 2.0, template_id=template, dlt_reason=dlt_reason),
            at + 0.004,
        )
    )


A, B, C = "+919876500001", "+919876500002", "+919811122233"


@pytest.fixture
async def filled(store: OpenedStore) -> OpenedStore:
    t = NOW - 3600
    await receive(store, "a1", A, "PRICE of shoes?", at=t, reply="Shoes are Rs 999", template="T1")
    await receive(store, "b1", B, "कीमत क्या है", at=t + 10, reply="Rs 500", rule="keyword:कीमत")
    await receive(
        store, "a2", A, "refund please", at=t + 20, reply=None, outcome="no_reply", rule=None
    )
    await receive(
        store,
        "c1",
        C,
        "=HYPERLINK(1)",
        at=t + 30,
        reply=None,
        outcome="dlt_refused",
        rule="default",
        dlt_reason="differs at character 3",
    )
    await receive(
        store,
        "a3",
        A,
        "<b>order 42</b> status",
        at=t + 40,
        reply="Order 42 shipped",
        rule="keyword:order",
        dlt_reason="no template",
    )
    return store


async def test_conversations_one_row_per_sender_newest_first(filled: OpenedStore) -> None:
    rows = await filled.inbox.conversations()
    assert [row.sender for row in rows] == [A, C, B]
    first = rows[0]
    assert (first.message_count, first.body, first.reply, first.unread) == (
        3,
        "<b>order 42</b> status",
        "Order 42 shipped",
        True,
    )
    await filled.inbox.mark_read(A, first.last_message_id)
    again = await filled.inbox.conversations()
    assert again[0].unread is False and again[1].unread is True
    assert await filled.inbox.unread_count() == 2
    # a new message makes it unread again and moves it to the top
    await receive(filled, "b2", B, "thanks", at=NOW)
    rows = await filled.inbox.conversations()
    assert rows[0].sender == B and rows[0].unread and rows[0].message_count == 2


async def test_conversations_page_by_keyset(filled: OpenedStore) -> None:
    first = await filled.inbox.conversations(limit=2)
    rest = await filled.inbox.conversations(limit=2, before=first[-1].last_message_id)
    assert [r.sender for r in first + rest] == [A, C, B]
    assert [r.sender for r in await filled.inbox.conversations(number="1122")] == [C]


async def test_thread_is_the_senders_messages_newest_first(filled: OpenedStore) -> None:
    items = await filled.inbox.thread(A)
    assert [m.sms_sid for m, _ in items] == ["a3", "a2", "a1"]
    older = await filled.inbox.thread(A, before=items[0][0].id, limit=1)
    assert [m.sms_sid for m, _ in older] == ["a2"]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (Filters(text="price"), ["a1"]),
        (Filters(text="PRI"), ["a1"]),  # a prefix, any case
        (Filters(text="price shoes"), ["a1"]),  # every word
        (Filters(text="price refund"), []),
        (Filters(text="shipped"), []),  # what customers wrote is searched, not the replies
        (Filters(text="कीमत"), ["b1"]),  # Hindi: vowel signs stay inside the word
        (Filters(text="order 42"), ["a3"]),
        (Filters(text='"; DROP TABLE messages; --'), []),  # only words are searched
        (Filters(text="!!!"), []),
        (Filters(number=A), ["a3", "a2", "a1"]),
        (Filters(number="09876500001"), ["a3", "a2", "a1"]),  # as customers write it
        (Filters(number="500002"), ["b1"]),  # some digits
        (Filters(outcome="no_reply"), ["a2"]),
        (Filters(outcome="dlt_refused"), ["c1"]),
        (Filters(rule="keyword:order"), ["a3"]),
        (Filters(dlt="matched"), ["a1"]),
        (Filters(dlt="refused"), ["c1"]),
        (Filters(dlt="warned"), ["a3"]),
        (Filters(since=NOW - 3600 + 15, until=NOW - 3600 + 35), ["c1", "a2"]),
        (Filters(text="order", number=A, outcome="replied"), ["a3"]),
        (Filters(text="order", outcome="no_reply"), []),
    ],
)
async def test_search(filled: OpenedStore, filters: Filters, expected: list[str]) -> None:
    found = await filled.inbox.search(filters)
    assert [m.sms_sid for m in found] == expected


async def test_search_pages_never_repeat_or_skip(store: OpenedStore) -> None:
    for i in range(23):
        # equal times on purpose: the keyset must still order them
        await receive(store, f"p{i:02d}", A, f"page test {i}", at=NOW - 100 + i // 3)
    for filters in (Filters(), Filters(text="page"), Filters(number=A)):
        seen: list[str] = []
        before = None
        while True:
            page = await store.inbox.search(filters, before=before, limit=5)
            seen += [m.sms_sid for m in page]
            if len(page) < 5:
                break
            before = page[-1].id
        assert sorted(seen) == [f"p{i:02d}" for i in range(23)], filters
        assert len(seen) == len(set(seen))
        streamed = [m.sms_sid async for m in store.inbox.stream(filters, chunk=4)]
        assert streamed == seen


async def test_stats_count_hours_outcomes_latency_and_words(filled: OpenedStore) -> None:
    stats = await filled.inbox.stats(max_age=0, utc_offset=19800)
    assert stats.total == 5
    assert sum(stats.per_hour["replied"]) == 3
    assert stats.outcomes == {"replied": 3, "no_reply": 1, "dlt_refused": 1}
    assert len(stats.hours) == 168
    assert all((h + 19800) % 3600 == 0 for h in stats.hours)  # hours of India's clock
    assert stats.latency_ms["p50"] == pytest.approx(4.0, abs=0.5)
    assert dict(stats.top_keywords)["PRICE"] == 1
    assert ("keyword:price", 1) in stats.top_rules
    old = await filled.inbox.stats(max_age=60)
    await receive(filled, "late", B, "PRICE", at=NOW)
    assert (await filled.inbox.stats(max_age=60)).total == old.total  # cached
    assert (await filled.inbox.stats(max_age=0)).total == 6


async def test_login_sessions_end_at_logout_and_expiry(store: OpenedStore) -> None:
    await store.logins.create_session("token-1", "csrf-1", 60)
    await store.logins.create_session("token-2", "csrf-2", -1)  # already expired
    assert await store.logins.session("token-1") == ("csrf-1", None, "admin")
    assert await store.logins.session("token-2") is None
    assert await store.logins.session("csrf-1") is None
    await store.logins.end_session("token-1")
    assert await store.logins.session("token-1") is None


async def test_users_their_roles_and_their_sessions(store: OpenedStore) -> None:
    from exosms.store.users import User, UserError, Users, user_name

    users = Users(store.logins.engine)
    await users.add("priya", "agent", "scrypt$hash-1")
    await users.add("ravi", "admin", "scrypt$hash-2")
    assert [(u.name, u.role, u.is_admin) for u in await users.all()] == [
        ("priya", "agent", False),
        ("ravi", "admin", True),
    ]
    assert all(isinstance(u, User) for u in await users.all())
    for bad, reason in (
        (("priya", "agent", "h"), "there is already a user 'priya'"),
        (("admin", "agent", "h"), "'admin' is the first admin"),
        (("sunil", "boss", "h"), "role: admin or agent, not 'boss'"),
    ):
        with pytest.raises(UserError, match=reason):
            await users.add(*bad)
    with pytest.raises(UserError, match="is not a user name"):
        user_name("Priya Sharma")
    assert user_name(" Priya ") == "priya"
    await store.logins.create_session("t-priya", "c-p", 60, user="priya")
    assert await store.logins.session("t-priya") == ("c-p", "priya", "agent")
    assert await users.set_password("priya", "scrypt$hash-3") is True  # logged out everywhere
    assert await store.logins.session("t-priya") is None
    assert await users.password_hash("priya") == ("agent", "scrypt$hash-3")
    await store.logins.create_session("t-ravi", "c-r", 60, user="ravi")
    assert await users.remove("ravi") is True
    assert await store.logins.session("t-ravi") is None
    assert await users.remove("ravi") is False
    assert await users.set_password("nobody", "x") is False


async def test_prune_takes_empty_conversations_away(filled: OpenedStore) -> None:
    await filled.prune(NOW - 3600 + 15)  # a1 and b1
    senders = [row.sender for row in await filled.inbox.conversations()]
    assert senders == [A, C]
    assert [m.sms_sid for m in await filled.inbox.search(Filters(text="price"))] == []


async def test_text_search_finds_matches_beyond_the_recent_window(
    store: OpenedStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import exosms.store.inbox

    # PostgreSQL reads the newest RECENT_WINDOW messages first, then its index for the rest.
    monkeypatch.setattr(exosms.store.inbox, "RECENT_WINDOW", 4)
    for i in range(20):
        body = f"refund {i}" if i % 6 == 0 else f"hello {i}"
        await receive(store, f"w{i:02d}", A if i % 2 else B, body, at=NOW - 1000 + i)
    expected = ["w18", "w12", "w06", "w00"]
    assert [m.sms_sid for m in await store.inbox.search(Filters(text="refund"))] == expected
    page = await store.inbox.search(Filters(text="refund"), limit=3)
    rest = await store.inbox.search(Filters(text="refund"), limit=3, before=page[-1].id)
    assert [m.sms_sid for m in page + rest] == expected
    assert [m.sms_sid for m in await store.inbox.search(Filters(text="refund", number=B))] == [
        "w18",
        "w12",
        "w06",
        "w00",
    ]
    assert await store.inbox.search(Filters(text="refund", number=A)) == []
    assert [m.sms_sid for m in await store.inbox.search(Filters(text="hello 7"))] == ["w07"]
