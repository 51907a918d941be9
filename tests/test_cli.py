"""The exosms command, run as a user runs it (a real process, a real SQLite file)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
from servers import ServerProcess, free_port


def exosms(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exosms", *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_commands_that_only_read_never_create_a_database(tmp_path: Path) -> None:
    for command in (
        ("messages",),
        ("optouts", "list"),
        ("dlt", "list"),
        ("events", "list"),
        ("outbox",),
        ("users", "list"),
        ("contacts", "list"),
    ):
        done = exosms(*command, cwd=tmp_path)
        assert done.returncode == 1, command
        assert "no database at exosms.db: nothing stored yet" in done.stderr, command
    assert list(tmp_path.iterdir()) == []


def test_db_upgrade_is_repeatable(tmp_path: Path) -> None:
    for _ in range(2):
        done = exosms("db", "upgrade", "--database", f"sqlite:///{tmp_path}/x.db", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert "up to date" in done.stdout


def test_demo_server_then_messages(tmp_path: Path) -> None:
    proc = ServerProcess(tmp_path, free_port(), f"sqlite:///{tmp_path / 'exosms.db'}").start()
    try:
        base = f"{proc.url}/exotel/sms"
        common = {"From": "09052161119", "To": "56070", "Date": "2026-11-26 10:00:00"}
        assert httpx.get(base, params={"SmsSid": "d1", "Body": "help", **common}).text.startswith(
            "exosms demo"
        )
        assert httpx.get(base, params={"SmsSid": "d2", "Body": "ECHO hi", **common}).text == "hi"
        assert httpx.get(base, params={"SmsSid": "d3", "Body": "hello", **common}).text == ""
        assert httpx.get(proc.url + "/").text.startswith("exosms is running")
    finally:
        proc.stop()
    assert "sid=d2 GET replied" in proc.log()

    listed = exosms("messages", "--database", proc.database_url, "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [r["sms_sid"] for r in rows] == ["d3", "d2", "d1"]
    assert rows[1]["reply"] == "hi"
    assert rows[1]["rule"] == "echo"
    assert rows[1]["sender"] == "+919052161119"
    assert rows[1]["sender_raw"] == "09052161119"
    assert rows[0]["outcome"] == "no_reply"

    text = exosms("messages", "--database", proc.database_url, "--limit", "1", cwd=tmp_path)
    assert "d3" in text.stdout and "d2" not in text.stdout
    assert "no_reply" in text.stdout


def test_serve_refuses_a_bad_app_with_a_clear_message(tmp_path: Path) -> None:
    done = exosms("serve", "--app", "no_such_module:router", cwd=tmp_path)
    assert done.returncode == 1
    assert "cannot import 'no_such_module'" in done.stderr
    done = exosms("serve", "--app", "json", cwd=tmp_path)
    assert "must look like module:attribute" in done.stderr
    done = exosms("serve", "--app", "json:dumps", cwd=tmp_path)
    assert "json:dumps() failed: TypeError" in done.stderr
    done = exosms("serve", "--app", "json:JSONDecoder", cwd=tmp_path)
    assert "returned JSONDecoder, not an exosms.Router" in done.stderr
    done = exosms("serve", "--app", "json:__name__", cwd=tmp_path)
    assert "is a str, not an exosms.Router" in done.stderr


def test_serve_refuses_bad_settings(tmp_path: Path) -> None:
    (tmp_path / "exosms.toml").write_text("reply_deadline = -1\n")
    done = exosms("serve", cwd=tmp_path)
    assert done.returncode == 1
    assert "reply_deadline: Input should be greater than 0" in done.stderr
    (tmp_path / "empty.toml").write_text("")
    done = exosms("serve", "--database", "mysql://x/y", "--config", "empty.toml", cwd=tmp_path)
    assert "unsupported database 'mysql'" in done.stderr


def test_example_shop_answers_order_status(tmp_path: Path) -> None:
    examples = Path(__file__).resolve().parents[1] / "examples"
    proc = ServerProcess(
        tmp_path,
        free_port(),
        f"sqlite:///{tmp_path / 'exosms.db'}",
        args=["--app", "shop:router"],
        env={"PYTHONPATH": str(examples), "SHOP_DB": str(tmp_path / "shop.db")},
    ).start()
    try:
        base = f"{proc.url}/exotel/sms"
        ask = {"From": "9052161119", "To": "56070"}
        assert httpx.get(base, params={"SmsSid": "o1", "Body": "ORDER 1001", **ask}).text == (
            "Order 1001 (2 x Basmati rice 5kg) is out for delivery. Thank you for shopping "
            "with Acme Stores."
        )
        assert (
            "not find order 42"
            in httpx.get(base, params={"SmsSid": "o2", "Body": "order: 42", **ask}).text
        )
        assert "ORDER" in httpx.get(base, params={"SmsSid": "o3", "Body": "ORDER", **ask}).text
    finally:
        proc.stop()


def test_rules_check_and_test(tmp_path: Path) -> None:
    examples = Path(__file__).resolve().parents[1] / "examples"
    done = exosms("rules", "check", str(examples / "shop-rules.toml"), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "8 rules, no problems" in done.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[[rules]]\nkeyword = "A"\nreply = "{x}"\n\n[[rules]]\nregex = "("\nreply = "y"\n'
    )
    done = exosms("rules", "check", str(bad), cwd=tmp_path)
    assert done.returncode == 1
    assert f"{bad}:1: rule 'A': unknown variable {{x}} in reply" in done.stdout
    assert f"{bad}:5: rule '#2': the regex does not compile" in done.stdout
    assert "2 problem(s)" in done.stdout

    config = tmp_path / "exosms.toml"
    config.write_text(f'rules_file = "{examples / "shop-rules.toml"}"\n')
    done = exosms("rules", "test", "hours", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "rule:    hours" in done.stdout
    assert "reply:   Acme Stores is open 9 am to 9 pm" in done.stdout
    done = exosms("rules", "test", "RETURN 12", "--to", "56070", cwd=tmp_path)
    assert "rule:    other" in done.stdout and "(no reply)" in done.stdout
    done = exosms("rules", "test", "RETURN 12", "--to", "08088919888", cwd=tmp_path)
    assert "rule:    return" in done.stdout


def test_rules_test_and_simulate_app_check_the_router_not_the_webhook_token(
    tmp_path: Path,
) -> None:
    (tmp_path / "exosms.toml").write_text(
        '[auth]\ntoken = "a-webhook-token-0123456789"\n\n'
        '[[rules]]\nkeyword = "HOURS"\nreply = "Open 10 am to 8 pm"\n'
    )
    done = exosms("rules", "test", "HOURS", cwd=tmp_path)
    assert "rule:    hours" in done.stdout and "reply:   Open 10 am to 8 pm" in done.stdout
    (tmp_path / "shop.py").write_text(
        "from exosms import Router\nrouter = Router()\n\n"
        "@router.keyword('HI')\ndef hi(sms, match):\n    return 'hello'\n"
    )
    done = exosms("simulate", "--app", "shop:router", "--body", "HI", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "401" not in done.stdout and "hello" in done.stdout


def test_inline_rules_in_exosms_toml(tmp_path: Path) -> None:
    (tmp_path / "exosms.toml").write_text(
        'port = 9999\n\n[[rules]]\nkeyword = "HI"\nreply = "hello {sender}"\n'
    )
    done = exosms("rules", "test", "hi", cwd=tmp_path)
    assert "reply:   hello +919052161119" in done.stdout
    done = exosms("rules", "check", cwd=tmp_path)
    assert "1 rules, no problems" in done.stdout


def test_prune(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'p.db'}"
    done = exosms("prune", "--older-than", "90d", "--database", db, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "deleted 0 message(s) received before" in done.stdout
    for wrong in ("soon", "90", "1m", "0d", "-3d"):
        done = exosms("prune", "--older-than", wrong, "--database", db, cwd=tmp_path)
        assert done.returncode == 2, wrong
        assert "use a number with min, h, d or w" in done.stderr, done.stderr


def test_prune_units_and_dry_run(tmp_path: Path) -> None:
    import sqlite3
    import time

    from exosms.cli import parse_age

    assert [parse_age(a) for a in ("30min", "12h", "90d", "2w", "1.5h")] == [
        1800,
        43200,
        90 * 86400,
        14 * 86400,
        5400,
    ]
    db_path = tmp_path / "p.db"
    db = f"sqlite:///{db_path}"
    assert exosms("db", "upgrade", "--database", db, cwd=tmp_path).returncode == 0
    now = time.time()
    with sqlite3.connect(db_path) as conn:
        for n, age in enumerate([3 * 3600, 3 * 3600, 60]):
            conn.execute(
                "INSERT INTO messages (sms_sid, sender, sender_raw, recipient, recipient_raw,"
                " body, query, date_raw, received_at, method, state) VALUES"
                " (?, '+919052161119', '9052161119', '56070', '56070', 'hi', '', '', ?, 'GET',"
                " 'done')",
                (f"p{n}", now - age),
            )
    dry = exosms("prune", "--older-than", "2h", "--dry-run", "--database", db, cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "would delete 2 message(s) received before" in dry.stdout
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 3
    done = exosms("prune", "--older-than", "2h", "--database", db, cwd=tmp_path)
    assert "deleted 2 message(s)" in done.stdout
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT sms_sid FROM messages").fetchall() == [("p2",)]


def test_init_and_password_keep_the_settings_file_as_written(tmp_path: Path) -> None:
    written = (
        "# my settings\nport = 8080  # behind nginx\n\n[auth]\n"
        '# Exotel\'s range\nallow_ips = ["203.0.113.0/24"]\n'
    )
    (tmp_path / "exosms.toml").write_text(written)
    done = exosms("init", "--no-inbox", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "exosms.toml").read_text()
    assert text.startswith(written.rstrip("\n"))  # every line and comment kept, in place
    assert 'token = "' in text and "keep it secret" in text
    done = subprocess.run(
        [sys.executable, "-m", "exosms", "password", "--password-stdin"],
        input="a long enough password\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    import tomllib

    settings = tomllib.loads((tmp_path / "exosms.toml").read_text())
    assert settings["port"] == 8080 and settings["auth"]["allow_ips"] == ["203.0.113.0/24"]
    assert settings["inbox"]["password_hash"].startswith("scrypt")
    assert "# behind nginx" in (tmp_path / "exosms.toml").read_text()


def test_rules_check_warns_of_fixed_replies_that_match_no_dlt_template(tmp_path: Path) -> None:
    (tmp_path / "templates.toml").write_text(
        '[[template]]\nid = "1107160000000000021"\n'
        'content = "We are open 10 am to 8 pm. -ACME"\n'
        '[[template]]\nid = "1107160000000000022"\n'
        'content = "You will get no more SMS from ACME. Send START to join again."\n'
    )
    (tmp_path / "exosms.toml").write_text(
        'database_url = "sqlite:///exosms.db"\n'
        'fallback_reply = "Sorry, try again later."\n'
        '[guards]\noptout_reply = "You will get no more SMS from ACME. Send START to join again."\n'
        '\n[[rules]]\nkeyword = "HOURS"\nreply = "We are open 10 am to 8 pm. -ACME"\n'
        '\n[[rules]]\nkeyword = "SALE"\nreply = "Big sale today!"\n'
        '\n[[rules]]\nkeyword = "ECHO"\nreply = "{rest}"\n'  # filled in: not checked here
    )
    done = exosms("rules", "check", cwd=tmp_path)
    assert done.returncode == 0 and "DLT" not in done.stdout  # no templates yet: nothing to say
    imported = exosms("dlt", "import", "templates.toml", cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    # The import itself says which fixed replies the check now refuses.
    assert "settings: [guards] optin_reply (the START confirmation): warning:" in imported.stdout
    assert "exosms.toml:10: rule sale: warning: matches no DLT template" in imported.stdout
    done = exosms("rules", "check", cwd=tmp_path)
    assert done.returncode == 0, done.stdout
    lines = done.stdout.splitlines()
    assert [line.split(": warning:")[0] for line in lines if ": warning:" in line] == [
        "exosms.toml:10: rule sale",
        "settings: [guards] optin_reply (the START confirmation)",
        "settings: fallback_reply",
    ]
    assert "matches no DLT template: no template matches; closest is" in done.stdout
    assert lines[-1].endswith("3 rules, no problems, 3 DLT warning(s)")


def test_scripts_install_only_when_pyproject_or_the_extras_change() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from _venv import to_install

    assert to_install("", "h1", "test") == {"test"}  # a fresh .venv
    assert to_install("h1 test", "h1", "") is None  # scripts/run after scripts/test
    assert to_install("h1 test", "h1", "test") is None
    assert to_install("h1", "h1", "test") == {"test"}  # scripts/test after scripts/run
    assert to_install("h1 test", "h2", "") == {"test"}  # pyproject.toml changed: keep extras
    assert to_install("4a06f045", "h1", "") == set()  # a stamp of the old kind: reinstall


def test_a_database_error_is_one_clean_line(tmp_path: Path) -> None:
    nowhere = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    for command in (("db", "upgrade"), ("serve", "--port", str(free_port()))):
        done = exosms(*command, "--database", nowhere, cwd=tmp_path)
        assert done.returncode == 1, command
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: cannot migrate the database: ")
        assert "sqlalche.me" not in done.stderr and "Background" not in done.stderr


def test_init_sets_public_url_and_prints_every_url_and_where(tmp_path: Path) -> None:
    bad = exosms("init", "--no-inbox", "--public-url", "http://sms.shop.in/x", cwd=tmp_path)
    assert bad.returncode == 2 and "https:// and the host only" in bad.stderr
    assert not (tmp_path / "exosms.toml").exists()
    done = exosms("init", "--no-inbox", "--public-url", "https://sms.shop.in/", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    import tomllib

    written = tomllib.loads((tmp_path / "exosms.toml").read_text())
    token = written["auth"]["token"]
    assert written["exotel"]["public_url"] == "https://sms.shop.in"
    assert f"  https://sms.shop.in/exotel/sms/{token}" in done.stdout
    assert f"  https://sms.shop.in/exotel/webhook/{token}" in done.stdout
    assert "App Bazaar" in done.stdout and "send API" in done.stdout
    assert "Then: exosms doctor." in done.stdout
    again = exosms("init", "--no-inbox", "--path", "webhook", cwd=tmp_path / ".." / tmp_path.name)
    assert again.returncode == 1 and "already has [auth] token" in again.stderr
