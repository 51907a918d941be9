"""Time the inbox's searches and overview on a generated database of 1,000,000 messages.

    python bench/inbox.py                       # SQLite, in bench/.data/inbox-1000000.db
    python bench/inbox.py --database postgresql://postgres@127.0.0.1/test_inbox_bench
    python bench/inbox.py --messages 100000     # a smaller database

The database is generated once (the triggers that keep full-text search and conversations
run for every row, as in production) and reused. Each query runs 7 times; the median and the
worst are printed, and written to bench/results/ with --save.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from exosms.store import open_database
from exosms.store.inbox import Filters, InboxQueries
from exosms.store.migrate import upgrade
from exosms.store.urls import parse_database_url

HERE = Path(__file__).resolve().parent
DAYS = 30
WORDS = (
    "price order status help delivery refund cancel address time open today kal aaj"
    " please thanks when where size colour payment upi cash return exchange"
).split()
KEYWORDS = ["PRICE", "ORDER", "STATUS", "HELP", "STOP", "START", "MENU", "HI", "BAL", "OTP"]
HINDI = ["नमस्ते", "कीमत क्या है", "ऑर्डर की स्थिति", "धन्यवाद", "मदद चाहिए"]
OUTCOMES = [
    ("replied", 0.80),
    ("no_reply", 0.10),
    ("suppressed", 0.05),
    ("fallback_timeout", 0.02),
    ("fallback_error", 0.01),
    ("dlt_refused", 0.015),
    ("too_long", 0.005),
]


def _body(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.55:
        return f"{rng.choice(KEYWORDS)} {rng.randint(1000, 99999)}"
    if roll < 0.65:
        return rng.choice(HINDI)
    words = rng.choices(WORDS, k=rng.randint(2, 12))
    return " ".join(words).capitalize() + rng.choice(["?", ".", "!", ""])


def _rows(count: int, seed: int = 7) -> Any:
    rng = random.Random(seed)
    now = time.time()
    start = now - DAYS * 86400
    step = DAYS * 86400 / count
    senders = [f"+9198{rng.randint(10000000, 99999999)}" for _ in range(50_000)]
    names, weights = zip(*OUTCOMES, strict=True)
    for i in range(count):
        received = start + i * step + rng.random() * step
        outcome = rng.choices(names, weights)[0]
        body = _body(rng)
        keyword = body.split(" ", 1)[0].lower()
        rule = f"keyword:{keyword}" if keyword.upper() in KEYWORDS else "default"
        reply = None
        if outcome in ("replied", "fallback_timeout", "fallback_error", "dlt_refused"):
            reply = f"Dear customer, your request {i} is noted. Call 1800-123-456 for help."
        sender = senders[min(int(rng.paretovariate(1.2)) - 1, len(senders) - 1) * 7 % len(senders)]
        handler_ms = rng.lognormvariate(1.0, 0.8)
        yield {
            "sms_sid": f"bench{i:09d}",
            "sender": sender,
            "sender_raw": "0" + sender[3:],
            "recipient": "+918041000000",
            "recipient_raw": "08041000000",
            "body": body,
            "query": f"SmsSid=bench{i:09d}&From=0{sender[3:]}&To=08041000000&Body=...",
            "date_raw": "2026-11-26 10:00:00",
            "exotel_date": received,
            "received_at": received,
            "method": "GET",
            "state": "done",
            "reply": reply,
            "rule": None if outcome in ("no_reply", "suppressed") else rule,
            "outcome": outcome,
            "handler_ms": handler_ms,
            "answered_at": received + (handler_ms + rng.random() * 3) / 1000,
            "fetch_count": 2,
            "reply_encoding": "GSM-7" if reply else None,
            "reply_units": len(reply) if reply else None,
            "reply_parts": 1 if reply else None,
            "dlt_template_id": "1107160000000000001" if reply and outcome == "replied" else None,
            "dlt_reason": "differs at character 5" if outcome == "dlt_refused" else None,
            "guard": "rate_limited" if outcome == "suppressed" else None,
            "refused_reply": f"Your order {i} ships soon" if outcome == "dlt_refused" else None,
        }


async def generate(url: str, count: int) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    from exosms.store.schema import messages

    await asyncio.to_thread(upgrade, url)
    engine = create_async_engine(parse_database_url(url).async_url)
    async with engine.begin() as conn:
        have = (await conn.execute(sa.select(sa.func.count()).select_from(messages))).scalar_one()
    if have >= count:
        await engine.dispose()
        return
    print(f"generating {count:,} messages (once) ...", file=sys.stderr)
    started = time.perf_counter()
    postgres = url.startswith("postgres")
    batch: list[dict[str, Any]] = []
    async with engine.begin() as conn:
        await conn.execute(sa.delete(messages))
        await conn.execute(sa.text("DELETE FROM conversations"))
        if postgres:
            # In one transaction, the row-per-message trigger would rewrite a busy sender's
            # conversation row hundreds of thousands of times (each version kept until the
            # commit): load first, then count the conversations once, below.
            await conn.execute(
                sa.text("ALTER TABLE messages DISABLE TRIGGER messages_conversation")
            )
        for row in _rows(count):
            batch.append(row)
            if len(batch) == 10_000:
                await conn.execute(sa.insert(messages), batch)
                batch = []
        if batch:
            await conn.execute(sa.insert(messages), batch)
        if postgres:
            await conn.execute(sa.text("ALTER TABLE messages ENABLE TRIGGER messages_conversation"))
    async with engine.begin() as conn:
        # What the store keeps as messages arrive (SQLite's indexer, PostgreSQL's trigger).
        if not postgres:
            await conn.execute(
                sa.text("INSERT INTO messages_fts (messages_fts) VALUES ('rebuild')")
            )
            await conn.execute(
                sa.text("UPDATE inbox_indexed SET id = (SELECT MAX(id) FROM messages)")
            )
        await conn.execute(
            sa.text(
                "INSERT INTO conversations (sender, recipient, last_message_id, last_at,"
                " message_count, read_id) SELECT m.sender, m.recipient, m.id, m.received_at,"
                " t.n, 0 FROM messages m JOIN (SELECT sender, MAX(id) AS id, COUNT(*) AS n"
                " FROM messages GROUP BY sender) t ON t.id = m.id"
            )
        )
        await conn.execute(sa.text("ANALYZE"))
    await engine.dispose()
    print(f"generated in {time.perf_counter() - started:.0f} s", file=sys.stderr)


async def generate_more(url: str, count: int) -> None:
    """What the newer pages read (once): the outbox (a reply through Exotel's API for a
    third of the messages, as on a webhook account: most delivered, some failed or held),
    a few people's replies by hand, contacts for 5,000 customers, two users."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from exosms.store.schema import contacts, outbox, users

    engine = create_async_engine(parse_database_url(url).async_url)
    async with engine.begin() as conn:
        have = (await conn.execute(sa.select(sa.func.count()).select_from(outbox))).scalar_one()
    if have >= count // 3:
        await engine.dispose()
        return
    print(f"generating {count // 3:,} outbox rows and 5,000 contacts (once) ...", file=sys.stderr)
    rng = random.Random(11)
    now = time.time()
    async with engine.begin() as conn:
        rows = (
            await conn.execute(
                sa.text(
                    "SELECT sms_sid, sender, received_at FROM messages"
                    " WHERE reply IS NOT NULL ORDER BY id LIMIT :n"
                ),
                {"n": count // 3},
            )
        ).all()
        batch: list[dict[str, Any]] = []
        for n, (sid, sender, received) in enumerate(rows):
            roll = rng.random()
            status, delivery = ("sent", "sent") if roll < 0.95 else ("sent", "failed")
            if roll > 0.998:
                status, delivery = "held", None
            hand = n % 50 == 0  # a reply by hand now and then
            batch.append(
                {
                    "message_sid": None if hand else sid,
                    "to_number": sender,
                    "body": f"Your request {n} is noted. -ACME",
                    "template_id": "1107160000000000001",
                    "status": status,
                    "attempts": 1,
                    "next_attempt_at": received,
                    "created_at": received + 0.01,
                    "sent_at": received + 0.2,
                    "delivery_status": delivery,
                    "detailed_status": "DELIVERED_TO_HANDSET" if delivery == "sent" else None,
                    "author": "priya" if hand else None,
                }
            )
            if len(batch) == 10_000:
                await conn.execute(sa.insert(outbox), batch)
                batch = []
        if batch:
            await conn.execute(sa.insert(outbox), batch)
        senders = (
            await conn.execute(sa.text("SELECT sender FROM conversations LIMIT 5000"))
        ).scalars()
        await conn.execute(sa.delete(contacts))
        await conn.execute(
            sa.insert(contacts),
            [
                {
                    "number": s,
                    "name": f"Customer {i} {rng.choice(['Rao', 'Shah', 'Iyer'])}",
                    "updated_at": now,
                }
                for i, s in enumerate(senders)
            ],
        )
        await conn.execute(sa.delete(users))
        await conn.execute(
            sa.insert(users),
            [
                {"name": name, "role": role, "password_hash": "scrypt$x", "created_at": now}
                for name, role in (("priya", "agent"), ("ravi", "admin"))
            ],
        )
        await conn.execute(sa.text("ANALYZE"))
    await engine.dispose()


async def measure(url: str, runs: int) -> dict[str, dict[str, float]]:
    database = open_database(url)
    await database.open()
    inbox: InboxQueries = database.inbox
    week_ago = time.time() - 7 * 86400
    first_page = await inbox.search(Filters())
    deep = first_page[-1].id - 500_000 if first_page else None
    some_sender = first_page[0].sender if first_page else ""
    cases: dict[str, Any] = {
        "conversations, page 1": lambda: inbox.conversations(),
        "conversations, deep page": lambda: inbox.conversations(before=deep),
        "thread of a busy sender": lambda: inbox.thread(some_sender),
        "all messages, page 1": lambda: inbox.search(Filters()),
        "all messages, deep page": lambda: inbox.search(Filters(), before=deep),
        "text: common word (price)": lambda: inbox.search(Filters(text="price")),
        "text: prefix (refu)": lambda: inbox.search(Filters(text="refu")),
        "text: two words": lambda: inbox.search(Filters(text="order status")),
        "text: Hindi (कीमत)": lambda: inbox.search(Filters(text="कीमत")),
        "text: no match": lambda: inbox.search(Filters(text="zzzqqq")),
        "number (full)": lambda: inbox.search(Filters(number=some_sender)),
        "number (some digits)": lambda: inbox.search(Filters(number="98765")),
        "outcome: dlt_refused": lambda: inbox.search(Filters(outcome="dlt_refused")),
        "outcome: replied": lambda: inbox.search(Filters(outcome="replied")),
        "outcome: none stored (too_long)": lambda: inbox.search(
            Filters(outcome="too_long", number="+919000000000")
        ),
        "rule: keyword:stop": lambda: inbox.search(Filters(rule="keyword:stop")),
        "rule: none stored": lambda: inbox.search(Filters(rule="keyword:nothing")),
        "the rules of the filter menu": lambda: inbox.rules(),
        "rule + last 7 days": lambda: inbox.search(Filters(rule="keyword:otp", since=week_ago)),
        "DLT: refused": lambda: inbox.search(Filters(dlt="refused")),
        "DLT: matched": lambda: inbox.search(Filters(dlt="matched")),
        "last 7 days + outcome + text": lambda: inbox.search(
            Filters(text="help", since=week_ago, outcome="replied")
        ),
        "overview (7 days, first read)": lambda: InboxQueries(inbox.engine).stats(max_age=0),
        "overview (7 days, next reads)": lambda: inbox.stats(max_age=0),
    }
    results: dict[str, dict[str, float]] = {}
    for name, run in cases.items():
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            await run()
            times.append((time.perf_counter() - started) * 1000)
        results[name] = {"median_ms": statistics.median(times), "max_ms": max(times)}
        print(f"{name:34s} median {statistics.median(times):8.1f} ms   worst {max(times):8.1f} ms")
    await database.close()
    return results


PAGES = {
    "page: conversations": "/inbox",
    "page: a busy conversation": None,  # filled in: the sender with most messages
    "page: search text": "/inbox/search?q=price",
    "page: search text + filters": "/inbox/search?q=help&outcome=replied&dlt=matched",
    "page: search number digits": "/inbox/search?number=98765",
    "page: search rule": "/inbox/search?rule=keyword%3Astop",
    "page: a message": "/inbox/m/500000",
    "page: overview": "/inbox/overview",
    "api: messages": "/api/messages?q=order&limit=50",
    "page: conversations, open": "/inbox?view=open",
    "page: conversations, unassigned": "/inbox?view=unassigned",
    "page: conversations, a name": "/inbox?number=customer+42",
    "page: outbox": "/inbox/outbox",
    "page: outbox, held": "/inbox/outbox?state=held",
    "page: outbox, one number": None,  # filled in: the busiest sender
    "page: opt-outs": "/inbox/optouts",
    "page: DLT (refused replies)": "/inbox/dlt",
    "page: users": "/inbox/users",
}


def measure_pages(url: str, runs: int) -> dict[str, dict[str, float]]:
    """The same over HTTP: `exosms serve` on this database, pages as a logged-in browser gets
    them (rendering included)."""
    import os
    import re
    import socket
    import subprocess

    import httpx

    from exosms.passwords import hash_password

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        "EXOSMS_INBOX__PASSWORD_HASH": hash_password("bench password"),
        "EXOSMS_INBOX__API_TOKEN": "bench-token",
        "EXOSMS_LOG_LEVEL": "warning",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "exosms", "serve", "--port", str(port), "--database", url], env=env
    )
    base = f"http://127.0.0.1:{port}"
    results: dict[str, dict[str, float]] = {}
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        client = httpx.Client(base_url=base, timeout=60)
        token = re.search(r'name="csrf" value="([^"]+)"', client.get("/inbox/login").text)
        assert token
        client.post("/inbox/login", data={"csrf": token.group(1), "password": "bench password"})
        busiest = client.get(
            "/api/conversations?limit=1", headers={"authorization": "Bearer bench-token"}
        )
        pages = dict(PAGES)
        busy = busiest.json()["conversations"][0]["sender"].replace("+", "%2B")
        pages["page: a busy conversation"] = "/inbox/c/" + busy
        pages["page: outbox, one number"] = "/inbox/outbox?number=" + busy
        time.sleep(3)  # the overview is prepared in the background at startup
        for name, path in pages.items():
            headers = {"authorization": "Bearer bench-token"} if path.startswith("/api") else {}
            times = []
            for _ in range(runs):
                started = time.perf_counter()
                answer = client.get(path, headers=headers)
                times.append((time.perf_counter() - started) * 1000)
                assert answer.status_code == 200, (path, answer.status_code, answer.text[:200])
            results[name] = {"median_ms": statistics.median(times), "max_ms": max(times)}
            print(
                f"{name:34s} median {statistics.median(times):8.1f} ms   worst {max(times):8.1f} ms"
            )
    finally:
        server.terminate()
        server.wait(30)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--database", help="a database URL (default: a SQLite file in bench/)")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--save", action="store_true", help="write bench/results/")
    args = parser.parse_args()
    url = args.database
    if url is None:
        data = HERE / ".data"
        data.mkdir(exist_ok=True)
        url = f"sqlite:///{data / f'inbox-{args.messages}.db'}"
    asyncio.run(generate(url, args.messages))
    asyncio.run(generate_more(url, args.messages))
    results = asyncio.run(measure(url, args.runs))
    results.update(measure_pages(url, args.runs))
    if args.save:
        kind = "postgres" if url.startswith("postgres") else "sqlite"
        stamp = time.strftime("%Y-%m-%d-%H%M")
        out = HERE / "results" / f"{stamp}-inbox-{kind}.json"
        out.write_text(
            json.dumps({"messages": args.messages, "database": kind, "results": results}, indent=2)
        )
        print(f"saved {out}")


if __name__ == "__main__":
    main()
