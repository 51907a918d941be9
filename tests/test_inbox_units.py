"""The inbox's pure parts: password hashes, search words, spreadsheet-safe cells,
filter parsing, and the `exosms password` command that writes the hash."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from starlette.datastructures import QueryParams

from exosms.cli import main
from exosms.config import load_settings
from exosms.passwords import (
    PasswordError,
    check_hash_format,
    hash_password,
    verify_password,
)
from exosms.store.inbox import search_terms
from exosms.store.stats import _bucket, _histogram_percentiles
from exosms.web.filters import BadFilter, parse_filters
from exosms.web.present import spreadsheet_safe


def test_password_hashes_are_salted_scrypt_and_verify() -> None:
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first.startswith("scrypt$16384$8$1$") and first != second  # a fresh salt each time
    assert verify_password("correct horse", first) and verify_password("correct horse", second)
    assert not verify_password("correct hors", first)
    assert not verify_password("", first)
    with pytest.raises(PasswordError, match="at least 10 characters"):
        hash_password("short")


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "correct horse",
        "bcrypt$2b$12$abc",
        "scrypt$16384$8$1$salt",
        "scrypt$1000$8$1$a$b",
        "scrypt$x$8$1$a$b",
    ],
)
def test_anything_but_a_hash_is_refused(stored: str) -> None:
    with pytest.raises(PasswordError):
        check_hash_format(stored)


def test_a_plain_password_in_the_settings_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "exosms.toml"
    config.write_text('[inbox]\npassword_hash = "hunter2hunter2"\n')
    with pytest.raises(Exception, match="not an exosms password hash"):
        load_settings(config)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("PRICE of shoes?", ["price", "of", "shoes"]),
        ("कीमत क्या है", ["कीमत", "क्या", "है"]),  # vowel signs (Mn, Mc) stay in the word
        ('"; DROP TABLE x; --', ["drop", "table", "x"]),
        ("order#42", ["order", "42"]),
        ("***", []),
    ],
)
def test_search_words(text: str, words: list[str]) -> None:
    assert search_terms(text) == words


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("http://evil")', '\'=HYPERLINK("http://evil")'),
        ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("+919876543210", "+919876543210"),  # a phone number stays a phone number
        ("-12.5", "-12.5"),
        ("hello = world", "hello = world"),
        (None, ""),
        (42, "42"),
    ],
)
def test_spreadsheet_safe_cells(value: object, cell: str) -> None:
    assert spreadsheet_safe(value) == cell


def test_latency_percentiles_from_a_histogram_are_close() -> None:
    from collections import Counter

    values = [i / 10 for i in range(1, 10_001)]  # 0.1 .. 1000 ms
    histogram = Counter(_bucket(v) for v in values)
    found = _histogram_percentiles(histogram)
    for name, exact in (("p50", 500.0), ("p90", 900.0), ("p99", 990.0)):
        assert found[name] == pytest.approx(exact, rel=0.03)
    assert _histogram_percentiles(Counter()) == {"p50": None, "p90": None, "p99": None}


def test_filters_from_a_query_string() -> None:
    india = ZoneInfo("Asia/Kolkata")
    filters = parse_filters(
        QueryParams("q=refund&from=2026-11-01&to=2026-11-01&outcome=replied"), india
    )
    assert filters.text == "refund" and filters.outcome == "replied"
    assert filters.until is not None and filters.since is not None
    assert filters.until - filters.since == 86400  # "to" includes its whole day
    # midnight in India is 18:30 UTC the day before
    assert filters.since == datetime(2026, 10, 31, 18, 30, tzinfo=UTC).timestamp()
    # Written the Indian way (day first), as the search page asks for it: the same day.
    for written in ("1/11/2026", "01-11-2026", "01.11.2026"):
        indian = parse_filters(QueryParams(f"from={written}"), india)
        assert indian.since == filters.since, written
    for query, reason in (
        ("from=31/02/2026", "from: '31/02/2026' is not a date \\(DD/MM/YYYY"),
        ("from=11/2026", "from: '11/2026' is not a date"),
        ("from=1/11/26", "from: '1/11/26' is not a date"),
        ("dlt=perhaps", "dlt: 'perhaps' is not one of"),
        ("q=" + "x" * 201, "q: at most 200 characters"),
        ("q=a&q=b", "q: given more than once"),
    ):
        with pytest.raises(BadFilter, match=reason):
            parse_filters(QueryParams(query), india)


def test_exosms_password_writes_only_the_hash(tmp_path: Path) -> None:
    config = tmp_path / "exosms.toml"
    config.write_text('port = 8080\n\n[inbox]\nsession_hours = 4\n\n[auth]\ntoken = "abc"\n')
    runner = CliRunner()
    result = runner.invoke(
        main,
        ["password", "--file", str(config), "--api-token"],
        input="a long password\na long password\n",
    )
    assert result.exit_code == 0, result.output
    text = config.read_text()
    assert "a long password" not in text
    data = tomllib.loads(text)
    assert data["port"] == 8080 and data["auth"]["token"] == "abc"
    assert data["inbox"]["session_hours"] == 4
    assert verify_password("a long password", data["inbox"]["password_hash"])
    assert len(data["inbox"]["api_token"]) >= 40
    settings = load_settings(config)
    assert settings.inbox.enabled
    # again: replaced in place, not duplicated
    result = runner.invoke(
        main, ["password", "--file", str(config), "--password-stdin"], input="another password\n"
    )
    assert result.exit_code == 0, result.output
    data = tomllib.loads(config.read_text())
    assert verify_password("another password", data["inbox"]["password_hash"])
    assert config.read_text().count("password_hash") == 1
    assert config.stat().st_mode & 0o077 == 0  # readable by its owner only


def test_exosms_password_refuses_mismatches_and_short_ones(tmp_path: Path) -> None:
    config = tmp_path / "exosms.toml"
    runner = CliRunner()
    result = runner.invoke(
        main, ["password", "--file", str(config)], input="a long password\nanother one\n"
    )
    assert result.exit_code != 0 and "the two passwords differ" in result.output
    result = runner.invoke(
        main, ["password", "--file", str(config), "--password-stdin"], input="short\n"
    )
    assert result.exit_code != 0 and "at least 10 characters" in result.output
    assert not config.exists() or "password_hash" not in config.read_text()


def test_exosms_init_asks_for_the_inbox_password(tmp_path: Path) -> None:
    config = tmp_path / "exosms.toml"
    result = CliRunner().invoke(
        main, ["init", "--file", str(config), "--inbox"], input="a long password\na long password\n"
    )
    assert result.exit_code == 0, result.output
    data = tomllib.loads(config.read_text())
    assert data["auth"]["token"]
    assert verify_password("a long password", data["inbox"]["password_hash"])
    skipped = tmp_path / "other.toml"
    result = CliRunner().invoke(main, ["init", "--file", str(skipped), "--inbox"], input="\n")
    assert result.exit_code == 0 and "inbox" not in tomllib.loads(skipped.read_text())


def test_a_taken_over_message_says_its_handler_may_have_run_twice() -> None:
    from exosms.store import StoredMessage
    from exosms.web.present import why

    def stored(**changes: object) -> StoredMessage:
        base = dict.fromkeys(StoredMessage.__slots__)
        base.update(id=1, sms_sid="s", body="HI", state="done", fetch_count=1, takeovers=0)
        base.update(changes)
        return StoredMessage(**base)  # type: ignore[arg-type]

    assert why(stored(outcome="replied", reply="hello")) == ""
    assert "may have run twice" in why(stored(outcome="replied", reply="hello", takeovers=1))
    not_started = stored(outcome="handler_not_started", error="all 32 handler threads were busy")
    assert why(not_started) == "all 32 handler threads were busy: the fallback was sent"


def test_the_reasons_say_each_thing_once_and_name_the_guard() -> None:
    from dataclasses import replace

    from exosms.store.base import StoredMessage
    from exosms.web.compose import what_to_register
    from exosms.web.present import OUTCOME_LABELS, why

    fields = {name: None for name in StoredMessage.__dataclass_fields__}
    base = StoredMessage(**{**fields, "state": "done", "takeovers": 0})  # type: ignore[arg-type]
    refused = replace(base, outcome="dlt_refused", dlt_reason="no template matches")
    shown = f"{OUTCOME_LABELS['dlt_refused']}: {why(refused)}"
    assert shown == (
        "DLT refused: the reply matched no approved template (no template matches):"
        " nothing was sent"
    )
    held = replace(base, outcome="suppressed", guard="loop")
    assert why(held) == "loop guard: the same text again, probably another auto-responder"
    assert what_to_register("Order 5521 ships 02-12-2026, see https://x.in/a") == (
        "Order {#var#} ships {#var#}, see {#var#}"
    )
