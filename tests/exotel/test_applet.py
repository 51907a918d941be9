"""Parsing Exotel's applet query string (no server needed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from exosms.exotel.applet import BadRequest, answer_headers, parse_exotel_date, parse_query


def parse(query: bytes, max_body_chars: int = 10_000) -> object:
    return parse_query(query, max_body_chars=max_body_chars, max_query_bytes=60_000)


def test_exotel_sample_request() -> None:
    request = parse(b"SmsSid=xxxxxx&From=9052161119&To=56070&Date=xxxxx&Body=Hello+World")
    assert request is not None
    assert request.sms_sid == "xxxxxx"  # type: ignore[attr-defined]
    assert request.sender == "9052161119"  # type: ignore[attr-defined]
    assert request.recipient == "56070"  # type: ignore[attr-defined]
    assert request.body == "Hello World"  # type: ignore[attr-defined]
    assert request.query == "SmsSid=xxxxxx&From=9052161119&To=56070&Date=xxxxx&Body=Hello+World"  # type: ignore[attr-defined]


def test_url_check_has_no_sid() -> None:
    assert parse(b"") is None
    assert parse(b"From=1&Body=x") is None
    assert parse(b"SmsSid=&From=1") is None


def test_unknown_parameters_are_ignored_and_same_value_repeats_allowed() -> None:
    request = parse(b"SmsSid=s&From=1&Extra=1&SmsSid=s&Body=%E0%A4%95")
    assert request is not None and request.body == "क"  # type: ignore[attr-defined]


def test_nul_in_body_is_replaced() -> None:
    request = parse(b"SmsSid=s&From=1&Body=a%00b")
    assert request is not None and request.body == "a\ufffdb"  # type: ignore[attr-defined]


def test_raw_utf8_bytes_are_decoded() -> None:
    request = parse("SmsSid=s&From=1&Body=नमस्ते".encode())
    assert request is not None and request.body == "नमस्ते"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "query, reason",
    [
        (b"SmsSid=s", "missing From"),
        (b"SmsSid=s&From=%20", "missing From"),
        (b"SmsSid=" + b"x" * 129 + b"&From=1", "SmsSid must be"),
        (b"SmsSid=s&From=1&Date=" + b"9" * 300, "Date longer than"),
        (b"SmsSid=s&From=1&To=%07", "To contains control characters"),
    ],
)
def test_rejections(query: bytes, reason: str) -> None:
    with pytest.raises(BadRequest, match=reason):
        parse(query)


def test_body_limit_counts_characters_not_bytes() -> None:
    assert parse("SmsSid=s&From=1&Body=ककक".encode(), max_body_chars=3) is not None
    with pytest.raises(BadRequest):
        parse("SmsSid=s&From=1&Body=कककक".encode(), max_body_chars=3)


def test_answer_headers() -> None:
    assert answer_headers("नमस्ते".encode()) == [
        (b"content-type", b"text/plain"),
        (b"content-length", b"18"),
    ]


IST = timezone(timedelta(hours=5, minutes=30))


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("2026-11-26 10:00:00", datetime(2026, 11, 26, 10, 0, tzinfo=IST)),
        ("2025-01-15T10:30:00+05:30", datetime(2025, 1, 15, 10, 30, tzinfo=IST)),
        ("2023-05-18T16:11:01Z", datetime(2023, 5, 18, 16, 11, 1, tzinfo=UTC)),
        ("2026-11-26T10:00:00", datetime(2026, 11, 26, 10, 0, tzinfo=IST)),
        ("xxxxx", None),
        ("", None),
        ("2026-13-45 99:00:00", None),
    ],
)
def test_exotel_dates(raw: str, expected: datetime | None) -> None:
    assert parse_exotel_date(raw) == expected
