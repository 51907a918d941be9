"""Micro-benchmarks of the pure hot-path pieces (pytest-benchmark).

Run: .venv/bin/python -m pytest bench/test_micro.py --benchmark-only
"""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from exosms import IncomingSms, Match, Router
from exosms.dlt import Template, TemplateRegistry
from exosms.segments import segment

WORDS = ["Dear", "Your", "Hello", "Thank", "Order", "Payment", "OTP", "Welcome", "Hi", "Rs."]


def _templates(count: int) -> list[Template]:
    rng = random.Random(7)
    return [
        Template(
            f"1107{n:015d}",
            f"{rng.choice(WORDS)} {{#var#}}, your {rng.choice(['order', 'booking', 'parcel'])} "
            f"{{#numeric#}} ref {n} is {rng.choice(['ready', 'shipped', 'confirmed'])}. -ACME",
        )
        for n in range(count)
    ]


@pytest.fixture(scope="module")
def registry() -> TemplateRegistry:
    return TemplateRegistry(_templates(5000))


def test_dlt_match_among_5000_templates(benchmark, registry: TemplateRegistry) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(3)
    texts = [
        t.content.replace("{#var#}", "Ravi").replace("{#numeric#}", "1234")
        for t in rng.sample(list(registry), 200)
    ]
    for text in texts:  # compile the candidates once, as a running server will have
        assert registry.match(text).matched
    state = {"i": 0}

    def one() -> None:
        state["i"] += 1
        registry.match(texts[state["i"] % len(texts)])

    benchmark(one)


def test_dlt_no_match_with_reason_among_5000(benchmark, registry: TemplateRegistry) -> None:  # type: ignore[no-untyped-def]
    benchmark(registry.match, "Dear Ravi, your order 1234 ref 17 is lost. -ACME")


# Shaped against the prefix index: every template begins with a slot, shares a long static
# middle with all the others, and differs only near its end.
SHARED = (
    ", your order {#numeric#} from ACME Retail Private Limited is confirmed and will be"
    " delivered by courier partner"
)


@pytest.fixture(scope="module")
def alike() -> TemplateRegistry:
    return TemplateRegistry(
        Template(f"1207{n:015d}", f"{{#var#}}{SHARED} {n} on {{#var#}}. -ACME") for n in range(5000)
    )


def _alike_text(n: int | str) -> str:
    filled = SHARED.replace("{#numeric#}", "1234")
    return f"Ravi{filled} {n} on Monday. -ACME"


def test_dlt_match_among_5000_alike_templates(benchmark, alike: TemplateRegistry) -> None:  # type: ignore[no-untyped-def]
    text = _alike_text(4321)
    assert alike.match(text).template_id == f"1207{4321:015d}"
    benchmark(alike.match, text)


def test_dlt_no_match_among_5000_alike_templates(benchmark, alike: TemplateRegistry) -> None:  # type: ignore[no-untyped-def]
    text = _alike_text("98765")
    verdict = alike.match(text)
    assert not verdict.matched and "closest is" in verdict.reason
    benchmark(alike.match, text)


def _router(count: int) -> Router:
    router = Router()
    for n in range(count):

        @router.keyword(f"KW{n}")
        async def handler(sms: IncomingSms, match: Match) -> str:
            return "x"

    return router


def test_route_among_1000_keyword_rules(benchmark) -> None:  # type: ignore[no-untyped-def]
    router = _router(1000)
    sms = IncomingSms("s", "+919052161119", "56070", "kw777 order 12", datetime.now(UTC))
    assert router.route(sms) is not None
    benchmark(router.route, sms)


def _mixed_router(count: int) -> Router:
    """``count`` rules, half keywords and half regexes, shaped against shortcuts: every
    regex shares a long prefix with the others and differs only at its end, some begin
    with a class or a wildcard, and some carry named groups."""
    router = Router()

    async def handler(sms: IncomingSms, match: Match) -> str:
        return "x"

    shapes = [
        r"order\s+status\s+for\s+item\s+{n}\b",
        r"(?P<code>[a-z]{{2}})\s*-\s*refund\s+{n}$",
        r".*\btrack(ing)?\s+parcel\s+{n}\b",
        r"(?P<amount>\d+)\s+rupees?\s+paid\s+to\s+{n}",
    ]
    for n in range(count // 2):
        router.keyword(f"KW{n}")(handler)
        router.regex(shapes[n % len(shapes)].format(n=n))(handler)
    return router


@pytest.fixture(scope="module")
def mixed() -> Router:
    return _mixed_router(1000)


def test_route_no_match_among_1000_mixed_rules(benchmark, mixed: Router) -> None:  # type: ignore[no-untyped-def]
    # Every regex is tried and fails near its end: the worst case.
    body = "order status for item 99999 please, and tracking parcel 99999 too"
    sms = IncomingSms("s", "+919052161119", "56070", body, datetime.now(UTC))
    assert mixed.route(sms) is None
    benchmark(mixed.route, sms)


def test_route_last_regex_among_1000_mixed_rules(benchmark, mixed: Router) -> None:  # type: ignore[no-untyped-def]
    sms = IncomingSms("s", "+919052161119", "56070", "750 rupees paid to 499", datetime.now(UTC))
    found = mixed.route(sms)
    assert found is not None and found[1].groups == {"amount": "750"}
    benchmark(mixed.route, sms)


def test_route_with_one_keyword_rule(benchmark) -> None:  # type: ignore[no-untyped-def]
    router = _router(1)
    sms = IncomingSms("s", "+919052161119", "56070", "kw0 order 12", datetime.now(UTC))
    benchmark(router.route, sms)


def test_segment_a_hindi_reply(benchmark) -> None:  # type: ignore[no-untyped-def]
    text = "नमस्ते राम, आपका ऑर्डर 2345 भेज दिया गया है। -ACME " * 3
    benchmark(segment.__wrapped__, text)


def test_segment_a_long_gsm_reply(benchmark) -> None:  # type: ignore[no-untyped-def]
    text = "Your order 12 has shipped and will reach you in 2 - 3 days. " * 8
    benchmark(segment.__wrapped__, text)


@pytest.fixture(scope="module")
def backlog(tmp_path_factory: pytest.TempPathFactory) -> object:
    """A SQLite outbox with 10,000 replies waiting (a burst the sender is behind on) and
    20,000 already sent."""
    import sqlite3
    import time

    from sqlalchemy import create_engine

    from exosms.store.schema import metadata

    path = tmp_path_factory.mktemp("outbox") / "backlog.db"
    engine = create_engine(f"sqlite:///{path}")
    metadata.create_all(engine)
    engine.dispose()
    conn = sqlite3.connect(path, isolation_level=None)
    now = time.time()
    conn.executemany(
        "INSERT INTO outbox (message_sid, to_number, sender, body, status, attempts,"
        " next_attempt_at, created_at) VALUES (?, ?, 'ACMEIN', 'Thank you', ?, 0, ?, ?)",
        [
            (f"m{n}", f"+9190{n:08d}", "sent" if n < 20_000 else "pending", now + n / 1e4, now)
            for n in range(30_000)
        ],
    )
    return conn


def test_lease_50_of_10000_waiting_replies(benchmark, backlog) -> None:  # type: ignore[no-untyped-def]
    import time

    from exosms.store.sqlite_outbox import _LEASE_DUE, _returning

    due = {"now": time.time() + 10, "until": time.time() + 70, "limit": 50}

    def one() -> None:
        backlog.execute("BEGIN")
        assert len(_returning(backlog, _LEASE_DUE, due)) == 50
        backlog.execute("ROLLBACK")

    benchmark(one)
