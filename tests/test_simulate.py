"""`exosms simulate` against deliberately broken servers, a correct exosms, and in process."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from broken_servers import REPLY, broken_server
from servers import ServerProcess

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def simulate(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    import os

    env = {**os.environ, "PYTHONPATH": str(EXAMPLES)}
    return subprocess.run(
        [sys.executable, "-m", "exosms", "simulate", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=env,
    )


@pytest.fixture(scope="module")
def broken() -> Iterator[str]:
    with broken_server() as url:
        yield url


@pytest.mark.parametrize(
    "mode, code, words",
    [
        ("charset", "content-type", "exactly 'text/plain'"),
        ("head405", "head-405", "HEAD answered 405"),
        ("chunked", "chunked", "Transfer-Encoding: chunked"),
        ("cl0body", "body-with-zero-length", "Content-Length: 0 (no reply) but then sends"),
        ("wronglength", "content-length-wrong", "Content-Length is 7 but the body is 21 bytes"),
        ("redirect", "redirect", "answered 302 redirecting to 'https://example.in/exotel'"),
        ("slow", "slow", "over the 0.5 s budget"),
        ("headdiffers", "head-headers", "HEAD and GET headers differ"),
        ("toolong", "too-many-parts", "needs 9 SMS parts"),
    ],
)
def test_each_broken_server_gets_its_named_violation(
    broken: str, mode: str, code: str, words: str
) -> None:
    done = simulate(f"{broken}/{mode}", "--json", "--budget", "0.5")
    assert done.returncode == 1, done.stdout + done.stderr
    report = json.loads(done.stdout)
    codes = {v["code"] for v in report["violations"]}
    assert code in codes
    assert any(words in v["message"] for v in report["violations"]), report["violations"]
    text = simulate(f"{broken}/{mode}", "--budget", "0.5")
    assert text.returncode == 1
    assert f"✗ {code}" in text.stdout
    assert "fix:" in text.stdout


def test_a_different_answer_on_a_repeated_get_is_a_warning(broken: str) -> None:
    done = simulate(f"{broken}/differs", "--json")
    report = json.loads(done.stdout)
    assert [v["code"] for v in report["violations"]] == ["repeat-differs"]
    assert report["violations"][0]["severity"] == "warning"
    assert done.returncode == 0


def test_a_correct_plain_server_passes(broken: str) -> None:
    done = simulate(f"{broken}/ok")
    assert done.returncode == 0, done.stdout
    assert "Checks: all passed." in done.stdout
    assert REPLY in done.stdout


def test_unreachable_is_exit_2() -> None:
    from servers import free_port

    done = simulate(f"http://127.0.0.1:{free_port()}/exotel/sms")
    assert done.returncode == 2
    assert "cannot connect" in done.stderr


def test_a_correct_exosms_server_passes_with_the_reply_and_its_parts(
    server: ServerProcess,
) -> None:
    done = simulate(f"{server.url}/exotel/sms", "--body", "ECHO नमस्ते", "--json")
    assert done.returncode == 0, done.stdout
    report = json.loads(done.stdout)
    assert report["reply"] == "नमस्ते"
    assert (report["encoding"], report["units"], report["parts"]) == ("UCS-2", 6, 1)
    assert report["violations"] == []


def test_json_schema_is_pinned(server: ServerProcess) -> None:
    done = simulate(
        f"{server.url}/exotel/sms", "--json", "--sid", "pinned1", "--date", "2026-11-26 10:00:00"
    )
    report = json.loads(done.stdout)
    assert list(report) == [
        "schema",
        "target",
        "sms",
        "head",
        "get",
        "repeat",
        "reply",
        "encoding",
        "units",
        "parts",
        "dlt",
        "violations",
        "ok",
    ]
    assert report["schema"] == "exosms.simulate/1"
    assert report["sms"] == {
        "SmsSid": "pinned1",
        "From": "9052161119",
        "To": "56070",
        "Date": "2026-11-26 10:00:00",
        "Body": "Hello World",
    }
    assert list(report["get"]) == ["status", "headers", "body", "chunked", "extra_bytes", "ms"]
    assert ["content-type", "text/plain"] in report["get"]["headers"]
    assert report["reply"] is None  # the test app's default rule answers nothing
    assert (report["encoding"], report["units"], report["parts"]) == (None, 0, 0)
    assert report["dlt"] is None  # no local template registry
    assert report["ok"] is True


def test_replies_are_checked_against_the_local_dlt_registry(
    server: ServerProcess, tmp_path: Path
) -> None:
    db = f"sqlite:///{tmp_path / 'local.db'}"
    templates = tmp_path / "t.toml"
    templates.write_text(
        '[[template]]\nid = "1107161234567890123"\ncontent = "Order {#numeric#} shipped. -ACME"\n'
    )
    imported = subprocess.run(
        [sys.executable, "-m", "exosms", "dlt", "import", str(templates), "--database", db],
        capture_output=True,
        text=True,
    )
    assert imported.returncode == 0, imported.stderr
    url = f"{server.url}/exotel/sms"
    good = simulate(url, "--body", "ECHO Order 12 shipped. -ACME", "--database", db, "--json")
    assert json.loads(good.stdout)["dlt"]["template_id"] == "1107161234567890123"
    assert good.returncode == 0
    bad = simulate(url, "--body", "ECHO Order 12 shipped -ACME", "--database", db, "--json")
    assert bad.returncode == 1
    report = json.loads(bad.stdout)
    assert report["dlt"]["template_id"] is None
    assert report["dlt"]["closest_template_id"] == "1107161234567890123"
    assert [v["code"] for v in report["violations"]] == ["dlt-no-match"]
    text = simulate(url, "--body", "ECHO Order 12 shipped -ACME", "--database", db)
    assert (
        "DLT: no template matches; closest is 1107161234567890123: differs at character 17"
        in text.stdout
    )


def test_repeat_reports_percentiles(server: ServerProcess) -> None:
    done = simulate(f"{server.url}/exotel/sms", "--repeat", "30", "--concurrency", "5", "--json")
    assert done.returncode == 0
    report = json.loads(done.stdout)
    assert report["sms_count"] == 30
    for name in ("head", "get", "sms"):
        assert set(report["latency_ms"][name]) == {"p50", "p90", "p99", "max"}
        assert 0 < report["latency_ms"][name]["p50"] <= report["latency_ms"][name]["max"]


def test_in_process_app_needs_no_network(tmp_path: Path) -> None:
    done = simulate("--app", "shop:router", "--body", "ORDER 1001", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Order 1001 (2 x Basmati rice 5kg) is out for delivery" in done.stdout


def test_conversation_script_passes_and_fails_with_a_diff(
    server: ServerProcess, tmp_path: Path
) -> None:
    script = tmp_path / "chat.txt"
    script.write_text(
        "# echo and silence\n"
        "9052161119 > ECHO Order 12 is out\n"
        "< Order 12 is out\n"
        "9052161119 > FROM\n"
        "<~ \\+919052161119 .* -> 56070\n"
        "9052161119 > nothing matches\n"
        "<\n"
    )
    done = simulate(f"{server.url}/exotel/sms", "--script", str(script))
    assert done.returncode == 0, done.stdout
    assert "3 of 3 turns as scripted." in done.stdout

    script.write_text("9052161119 > ECHO Order 12 is late\n< Order 12 is out\n")
    done = simulate(f"{server.url}/exotel/sms", "--script", str(script))
    assert done.returncode == 1
    assert "-Order 12 is out" in done.stdout
    assert "+Order 12 is late" in done.stdout


def test_bad_script_lines_are_named(server: ServerProcess, tmp_path: Path) -> None:
    script = tmp_path / "bad.txt"
    script.write_text("< reply before any sms\n")
    done = simulate(f"{server.url}/exotel/sms", "--script", str(script))
    assert done.returncode == 1
    assert "line 1: a reply ('<') with no SMS" in done.stderr


def test_url_or_app_is_required() -> None:
    done = simulate()
    assert done.returncode == 2
    assert "give a URL to check, or --app" in done.stderr
