"""The DLT gate end to end: a real server, real HTTP, templates imported with the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from servers import ServerProcess, free_port

SHIPPED = "Dear {#var#}, your order {#var#} has been shipped. Regards XYZ."
SORRY = "Sorry, we could not process your message. -ACME"
TEMPLATES = f"""
[[template]]
id = "1107161234567890123"
name = "shipped"
content = "{SHIPPED}"

[[template]]
id = "1107161234567890999"
name = "sorry"
content = "{SORRY}"
"""


def exosms(db: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exosms", *args, "--database", db],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
    )


def import_templates(db: str, cwd: Path) -> None:
    path = cwd / "templates.toml"
    path.write_text(TEMPLATES)
    done = exosms(db, cwd, "dlt", "import", str(path))
    assert done.returncode == 0, done.stderr


def stored(proc: ServerProcess, sid: str) -> dict[str, object]:
    done = exosms(proc.database_url, proc.workdir, "messages", "--json", "--limit", "1000")
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    return next(r for r in rows if r["sms_sid"] == sid)


def send(proc: ServerProcess, body: str) -> tuple[str, str]:
    sid = uuid.uuid4().hex
    params = {"SmsSid": sid, "From": "9052161119", "To": "56070", "Body": body}
    answer = httpx.get(f"{proc.url}/exotel/sms", params=params)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/plain"
    return sid, answer.text


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[object]:
    started: list[ServerProcess] = []

    def make(mode: str, templates: bool = True, **env: str) -> ServerProcess:
        workdir = tmp_path / f"{mode}-{len(started)}"
        workdir.mkdir()
        db = f"sqlite:///{workdir / 'exosms.db'}"
        if templates:
            import_templates(db, workdir)
        proc = ServerProcess(
            workdir,
            free_port(),
            db,
            args=["--app", "exosms_test_apps:router"],
            env={"EXOSMS_DLT__MODE": mode, "EXOSMS_FALLBACK_REPLY": SORRY, **env},
        ).start()
        started.append(proc)
        return proc

    yield make
    for proc in started:
        proc.stop()


def test_enforce_replaces_a_non_matching_reply_with_the_fallback(
    make_server: Callable[..., ServerProcess],
) -> None:
    proc = make_server("enforce")
    good = "Dear Ram, your order 12 has been shipped. Regards XYZ."
    sid, reply = send(proc, f"ECHO {good}")
    assert reply == good
    row = stored(proc, sid)
    assert (row["outcome"], row["dlt_template_id"]) == ("replied", "1107161234567890123")
    assert (row["reply_encoding"], row["reply_units"], row["reply_parts"]) == ("GSM-7", 54, 1)

    sid, reply = send(proc, "ECHO Dear Ram, your order 12 has been shipped. Regards XYZ")
    assert reply == SORRY
    row = stored(proc, sid)
    assert row["outcome"] == "dlt_refused"
    assert row["reply"] == SORRY
    # The refused text is kept: the shop sees what it would have to register.
    assert row["refused_reply"] == "Dear Ram, your order 12 has been shipped. Regards XYZ"
    assert row["dlt_template_id"] == "1107161234567890999"  # what was sent instead
    assert "differs at character 54: expected '.', got end of text" in str(row["dlt_reason"])
    listed = exosms(proc.database_url, proc.workdir, "messages", "--limit", "1")
    assert "differs at character 54" in listed.stdout


def test_templates_rendered_by_handlers_comply(make_server: Callable[..., ServerProcess]) -> None:
    proc = make_server("enforce")
    sid, reply = send(proc, "SHIPPED 4521")
    assert reply == "Dear Ram, your order 4521 has been shipped. Regards XYZ."
    sid, reply = send(proc, "SHIPPED " + "9" * 31)  # too long for {#var#}: render fails
    assert reply == SORRY
    row = stored(proc, sid)
    assert row["outcome"] == "fallback_error"
    assert "TemplateError" in str(row["error"])


def test_warn_sends_anyway_and_stores_the_verdict(
    make_server: Callable[..., ServerProcess],
) -> None:
    proc = make_server("warn")
    sid, reply = send(proc, "ECHO Your order 12 is shipped")
    assert reply == "Your order 12 is shipped"
    row = stored(proc, sid)
    assert row["outcome"] == "replied"
    assert row["dlt_template_id"] is None
    assert "no template matches; closest is" in str(row["dlt_reason"])
    assert "reply matches no DLT template (sent anyway)" in proc.log()


def test_too_many_parts_is_not_sent(make_server: Callable[..., ServerProcess]) -> None:
    proc = make_server("off")
    sid, reply = send(proc, "ECHO " + "x" * 1200)  # 8 parts of 153
    assert reply == SORRY
    row = stored(proc, sid)
    assert row["outcome"] == "too_long"
    assert row["refused_reply"] == "x" * 1200
    assert "reply needs 8 SMS parts; at most 7 are sent" in str(row["error"])


def test_auto_mode_switches_to_enforce_when_templates_arrive(
    make_server: Callable[..., ServerProcess],
) -> None:
    proc = make_server("auto", templates=False, EXOSMS_DLT__RELOAD_SECONDS="0.2")
    _, reply = send(proc, "ECHO anything goes")
    assert reply == "anything goes"  # no templates yet: warn
    import_templates(proc.database_url, proc.workdir)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        _, reply = send(proc, "ECHO anything goes")
        if reply == SORRY:
            break
        time.sleep(0.1)
    assert reply == SORRY
    assert "DLT templates reloaded: 2 approved" in proc.log()
