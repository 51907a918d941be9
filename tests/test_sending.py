"""The outbox worker against the fake Exotel (a real process, over real HTTP) and a real
SQLite file: a burst goes out in groups (one durable write marks a group ``posting``, one
more marks it sent), a customer's replies leave in the order they were queued, and a bad
answer inside a group settles only its own row."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from fake_exotel import FakeExotelProcess, fake_exotel

from exosms.exotel.client import Client, SendResult
from exosms.sending import OutboxWorker
from exosms.store import open_database
from exosms.store.database import Database
from exosms.store.migrate import upgrade_async
from exosms.store.sqlite import SqliteStore

pytestmark = pytest.mark.anyio


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeExotelProcess]:
    with fake_exotel(tmp_path) as running:
        yield running


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    url = f"sqlite:///{tmp_path / 'sending.db'}"
    await upgrade_async(url)
    database = open_database(url, indexing=False)  # no background writes: they are counted
    await database.open()
    yield database
    await database.close()


def _worker(db: Database, fake: FakeExotelProcess, sends_at_once: int = 8) -> OutboxWorker:
    client = Client(
        "acme", "key", "token", base_url=fake.url, sender="ACMEIN", max_retries=0, timeout=2
    )
    return OutboxWorker(db.outbox, client, signing_key=b"test", sends_at_once=sends_at_once)


def _writes(db: Database) -> int:
    assert isinstance(db.store, SqliteStore)
    return db.store._writer.writes


async def _send_all(db: Database, worker: OutboxWorker) -> None:
    rows = await db.outbox.lease_due(100, 60)
    try:
        await worker.send_rows(rows)
    finally:
        await worker.client.aclose()


async def test_a_burst_goes_out_in_groups_and_each_customer_in_order(
    db: Database, fake: FakeExotelProcess
) -> None:
    # Four replies to one customer queued first, then one each to eight others.
    for n in range(4):
        await db.outbox.enqueue("+919052161119", f"to A, number {n}")
    for n in range(8):
        await db.outbox.enqueue(f"+91905216120{n}", f"to customer {n}")
    worker = _worker(db, fake)
    before = _writes(db)
    await _send_all(db, worker)
    # One lease, then groups A0 + seven others; A1 + the last; A2; A3: two writes each,
    # against 24 when every row had its own posting and sent writes.
    assert _writes(db) - before == 1 + 8
    bodies = [m["Body"] for m in fake.messages()]
    assert sorted(bodies) == sorted(
        [f"to A, number {n}" for n in range(4)] + [f"to customer {n}" for n in range(8)]
    )
    assert [b for b in bodies if b.startswith("to A")] == [f"to A, number {n}" for n in range(4)]
    rows = await db.outbox.recent(50)
    assert {r.status for r in rows} == {"sent"}
    assert len({r.exotel_sid for r in rows}) == 12  # each with its own Exotel SmsSid


async def test_one_at_a_time_when_asked(db: Database, fake: FakeExotelProcess) -> None:
    for n in range(3):
        await db.outbox.enqueue(f"+91905216130{n}", f"single {n}")
    worker = _worker(db, fake, sends_at_once=1)
    before = _writes(db)
    await _send_all(db, worker)
    assert _writes(db) - before == 1 + 6  # the lease, then posting and sent for each row
    assert [m["Body"] for m in fake.messages()] == [f"single {n}" for n in range(3)]


async def test_a_refusal_and_a_lost_answer_in_a_group_touch_only_their_rows(
    db: Database, fake: FakeExotelProcess
) -> None:
    for n in range(6):
        await db.outbox.enqueue(f"+91905216140{n}", f"grouped {n}")
    fake.fail(status=400)  # the first POST to arrive: Exotel refuses it, final
    fake.fail(drop_answer=True)  # the second: accepted, its answer never comes
    await _send_all(db, _worker(db, fake))
    rows = await db.outbox.recent(50)
    statuses = sorted(r.status for r in rows)
    assert statuses == ["failed", "sent", "sent", "sent", "sent", "unknown"]
    failed = next(r for r in rows if r.status == "failed")
    assert failed.last_error is not None and "400" in failed.last_error
    # The lost answer was accepted: the fake has it, and exosms never posts it again.
    accepted = {m["Body"] for m in fake.messages()}
    assert len(accepted) == 5 and failed.body not in accepted
    assert next(r for r in rows if r.status == "unknown").body in accepted


class _FailsOnce(Client):
    """The real client, with a fault of our own (not Exotel's) in one send of the group."""

    async def send_prepared(self, fields: dict[str, str]) -> SendResult:
        if fields["Body"] == "grouped 2":
            raise RuntimeError("a bug while sending")
        return await super().send_prepared(fields)


async def test_a_fault_of_ours_mid_group_leaves_that_row_in_doubt_and_the_worker_alive(
    db: Database, fake: FakeExotelProcess
) -> None:
    for n in range(4):
        await db.outbox.enqueue(f"+91905216160{n}", f"grouped {n}")
    client = _FailsOnce("acme", "key", "token", base_url=fake.url, sender="ACMEIN")
    worker = OutboxWorker(db.outbox, client, signing_key=b"test")
    await _send_all(db, worker)  # does not raise: the other three are sent and recorded
    rows = {r.body: r for r in await db.outbox.recent(10)}
    assert [rows[f"grouped {n}"].status for n in range(4)] == ["sent", "sent", "unknown", "sent"]
    assert "RuntimeError" in (rows["grouped 2"].last_error or "")
