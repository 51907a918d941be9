"""Prunes and new messages in any order: ids never come back, the inbox finds every message,
and SQLite's own integrity checks (the file's and the full-text index's) stay clean."""

from __future__ import annotations

import random
import sqlite3
import time

import pytest
from test_contract import done, message

from exosms.store.inbox import Filters
from exosms.store.opening import OpenedStore

pytestmark = pytest.mark.anyio

DAY = 86400.0


async def _add(store: OpenedStore, sid: str, body: str, at: float) -> None:
    sender = f"+9190521{abs(hash(sid)) % 100000:05d}"
    m = message(sid, body, at=at)
    m.sender = sender
    await store.claim(m, "me", time.time() + 5)
    await store.complete(done(sid, f"re {body}"))


async def _integrity(store: OpenedStore) -> None:
    path = getattr(store, "path", None)
    if path is None:
        return  # PostgreSQL: ids come from a sequence, and no external index is kept by hand
    await store.inbox.refresh()  # every stored message indexed: the check compares both ways
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        # FTS5's own check: every indexed row matches the messages table, and back.
        conn.execute("INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)")


async def test_the_inbox_finds_new_messages_after_a_prune_of_the_newest(store: OpenedStore) -> None:
    now = time.time()
    for n in range(30):
        await _add(store, f"p{n}", f"parcel{n}", now - 100 * DAY)
    await store.inbox.refresh()
    top = max(m.id for m in await store.recent(100))
    assert await store.prune(now - 90 * DAY) == 30  # every row, the newest too
    await _add(store, "after1", "umbrella", now)
    stored = await store.lookup("after1")
    assert stored is not None and stored.id > top  # never an id handed out before
    found = await store.inbox.search(Filters(text="umbrella"))
    assert [m.sms_sid for m in found] == ["after1"]
    conversations = await store.inbox.conversations()
    assert [c.last_message_id for c in conversations] == [stored.id]
    await _integrity(store)


async def test_any_sequence_of_prunes_and_messages_keeps_the_index_whole(
    store: OpenedStore,
) -> None:
    rng = random.Random(14)
    now = time.time()
    alive: dict[str, str] = {}
    last_id = 0
    for step in range(12):
        for n in range(rng.randint(1, 15)):
            sid = f"r{step}-{n}"
            old = rng.random() < 0.6
            word = f"w{step}x{n}"
            await _add(store, sid, word, now - (100 * DAY if old else 0))
            alive[sid] = "old" if old else word
            stored = await store.lookup(sid)
            assert stored is not None and stored.id > last_id
            last_id = stored.id
        if rng.random() < 0.5:
            await store.inbox.refresh()
        if rng.random() < 0.6:
            await store.prune(now - 90 * DAY, batch=rng.randint(1, 7))
            alive = {sid: word for sid, word in alive.items() if word != "old"}
        await _integrity(store)
    for sid, word in alive.items():
        if word == "old":
            continue
        found = await store.inbox.search(Filters(text=word))
        assert [m.sms_sid for m in found] == [sid]
    remaining = {m.sms_sid for m in await store.recent(1000)}
    assert {sid for sid in alive} == remaining
    total = sum(c.message_count for c in await store.inbox.conversations(limit=1000))
    assert total == len(remaining)
