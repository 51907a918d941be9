"""SIGKILL of exosms at each step of an outgoing SMS, on SQLite and PostgreSQL: no duplicate,
no loss. Before the POST it is sent after the restart; after the POST was written (Exotel
accepted it, its answer never came) it is never resent blindly: held for a person; after its
callback nothing more happens."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_exotel import FakeExotelProcess, fake_exotel
from servers import ServerProcess, free_port
from waiting import wait_for

pytestmark = pytest.mark.slow

BODY = "ECHO Order 21 is out for delivery. -ACME"


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'kill.db'}"
        return
    from pg import create_database, drop_database

    url = create_database()
    yield url
    drop_database(url)


def _rows(database: str) -> list[dict[str, Any]]:
    import asyncio

    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from exosms.store.urls import parse_database_url

    async def read() -> list[dict[str, Any]]:
        engine = create_async_engine(parse_database_url(database).async_url)
        try:
            async with engine.connect() as conn:
                result = await conn.execute(text("SELECT * FROM outbox ORDER BY id"))
                return [dict(r._mapping) for r in result]
        finally:
            await engine.dispose()

    return asyncio.run(read())


@pytest.fixture
def start(
    tmp_path: Path, database: str
) -> Iterator[Callable[..., tuple[ServerProcess, FakeExotelProcess]]]:
    running: list[ServerProcess] = []
    with fake_exotel(tmp_path) as fake:

        def make(configured: bool = True) -> tuple[ServerProcess, FakeExotelProcess]:
            port = free_port()
            env = {
                "EXOSMS_EXOTEL__TIMEOUT_SECONDS": "30",
                "EXOSMS_EXOTEL__SEND_LEASE_SECONDS": "2",
                "EXOSMS_EXOTEL__UNKNOWN_WAIT_SECONDS": "1",
            }
            if configured:
                env |= {**fake.settings(), "EXOSMS_EXOTEL__PUBLIC_URL": f"http://127.0.0.1:{port}"}
            proc = ServerProcess(
                tmp_path, port, database, args=["--app", "exosms_test_apps:router"], env=env
            ).start()
            running.append(proc)
            return proc, fake

        yield make
        for proc in running:
            proc.stop()


def test_killed_before_the_post_it_is_sent_once_after_restart(start, database: str) -> None:  # type: ignore[no-untyped-def]
    proc, fake = start(configured=False)  # nothing can be sent yet
    fake.webhook(f"{proc.url}/exotel/webhook", BODY)
    assert [r["status"] for r in _rows(database)] == ["pending"]
    proc.kill()
    start()
    wait_for(lambda: _rows(database)[0]["delivery_status"] == "sent")
    assert len(fake.messages()) == 1


def test_killed_after_the_post_was_written_it_is_held_never_resent(start, database: str) -> None:  # type: ignore[no-untyped-def]
    proc, fake = start()
    fake.fail(drop_answer=True, lose_callback=True)  # accepted; no answer, no callback
    fake.webhook(f"{proc.url}/exotel/webhook", BODY)
    wait_for(lambda: len(fake.messages()) == 1)  # the POST reached Exotel
    assert _rows(database)[0]["status"] == "posting"
    proc.kill()
    start()
    wait_for(lambda: _rows(database)[0]["status"] == "held")
    row = _rows(database)[0]
    assert "stopped after posting" in row["last_error"]
    assert len(fake.messages()) == 1  # in doubt: never sent again on its own


def test_killed_after_the_callback_nothing_more_is_sent(start, database: str) -> None:  # type: ignore[no-untyped-def]
    proc, fake = start()
    fake.webhook(f"{proc.url}/exotel/webhook", BODY)
    wait_for(lambda: _rows(database)[0]["delivery_status"] == "sent")
    proc.kill()
    restarted, _ = start()
    # Another SMS through the restarted worker: once it is sent, the worker has swept and
    # polled the whole outbox, and the first SMS was not due.
    fake.webhook(f"{restarted.url}/exotel/webhook", BODY.replace("21", "22"))
    wait_for(lambda: len(_rows(database)) == 2 and _rows(database)[1]["status"] == "sent")
    assert [m["Body"] for m in fake.messages()] == [
        "Order 21 is out for delivery. -ACME",
        "Order 22 is out for delivery. -ACME",
    ]
    assert _rows(database)[0]["status"] == "sent"
