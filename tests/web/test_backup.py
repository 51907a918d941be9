"""Backups for real: `exosms backup` of a SQLite file while the server answers a steady
load, checked; `exosms restore` into a new file; a server on it answers every stored
SmsSid with the same bytes. A restore onto a running server, a damaged file and a
PostgreSQL URL are refused with the reason."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import httpx
import pytest
from commands import exosms
from servers import ServerProcess, free_port

pytestmark = pytest.mark.slow


def params(n: int) -> dict[str, str]:
    return {"SmsSid": f"bk-{n}", "From": f"98111{n:05d}", "To": "56070", "Body": f"ECHO reply {n}"}


def test_backup_under_load_and_restore_answers_the_same(tmp_path: Path) -> None:
    live = tmp_path / "live"
    live.mkdir()
    proc = ServerProcess(
        live,
        free_port(),
        f"sqlite:///{live / 'exosms.db'}",
        args=["--app", "exosms_test_apps:router"],
    ).start()
    answers: dict[str, bytes] = {}
    enough = threading.Event()
    stop = threading.Event()

    def load() -> None:  # one SMS after another, as fast as the server answers
        with httpx.Client(base_url=proc.url, timeout=10) as client:
            n = 0
            while not stop.is_set():
                answer = client.get("/exotel/sms", params=params(n))
                assert answer.status_code == 200
                answers[f"bk-{n}"] = answer.content
                n += 1
                if n == 150:
                    enough.set()

    worker = threading.Thread(target=load)
    worker.start()
    try:
        assert enough.wait(60)
        backup = tmp_path / "backup.db"
        done = exosms("backup", str(backup), "--database", proc.database_url, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("backed up ") and done.stdout.strip().endswith("integrity ok")
        refused = exosms(
            "restore", str(backup), "--yes", "--database", proc.database_url, cwd=tmp_path
        )
        assert refused.returncode == 1
        assert (
            "exosms serve is running on exosms.db (its lease is live): stop it first"
            in refused.stderr
        )
    finally:
        stop.set()
        worker.join(30)
        proc.stop()
    with sqlite3.connect(backup) as conn:
        stored = [
            row[0] for row in conn.execute("SELECT sms_sid FROM messages WHERE state = 'done'")
        ]
        total = conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
    assert len(stored) >= 150

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    target = f"sqlite:///{fresh / 'exosms.db'}"
    back = exosms("restore", str(backup), "--database", target, cwd=tmp_path)
    assert back.returncode == 0, back.stderr
    assert back.stdout.startswith(f"restored {total} messages from ")
    restored = ServerProcess(
        fresh, free_port(), target, args=["--app", "exosms_test_apps:router"]
    ).start()
    try:
        with httpx.Client(base_url=restored.url, timeout=10) as client:
            for sid in stored:
                n = int(sid.split("-")[1])
                again = client.get("/exotel/sms", params=params(n))
                assert again.content == answers[sid], sid  # the stored answer, byte for byte
    finally:
        restored.stop()


def test_a_damaged_backup_or_a_postgresql_url_is_refused(tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.db"
    damaged.write_bytes(b"SQLite format 3\x00" + b"\x00" * 100)
    done = exosms(
        "restore", str(damaged), "--database", f"sqlite:///{tmp_path / 'x.db'}", cwd=tmp_path
    )
    assert done.returncode == 1 and "damaged.db is not an exosms database" in done.stderr
    assert not (tmp_path / "x.db").exists()
    pg = exosms(
        "backup", "b.db", "--database", "postgresql://postgres@127.0.0.1/test", cwd=tmp_path
    )
    assert pg.returncode == 1 and "use its own tools: pg_dump" in pg.stderr
    none = exosms("backup", "b.db", "--database", f"sqlite:///{tmp_path / 'none.db'}", cwd=tmp_path)
    assert none.returncode == 1 and "nothing to back up" in none.stderr
