"""Exotel's "Send a Reply" applet contract, and nothing else.

Exotel calls ``HEAD`` then ``GET <url>?SmsSid=..&From=..&To=..&Date=..&Body=..``. The answer's
body is the reply SMS; it must be ``Content-Type: text/plain`` exactly (no charset) with a
true ``Content-Length``; an empty body with ``Content-Length: 0`` means "no reply".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from exosms.exotel import forms

CONTENT_TYPE = b"text/plain"  # exactly: Exotel's article says "and nothing else"
SID_MAX_LEN = 128  # Exotel's SmsSids are 32 hex characters; leave room, refuse junk
FIELD_MAX_LEN = 256  # From, To and Date are short; a longer one is not Exotel
_FIELDS = ("SmsSid", "From", "To", "Date", "Body")


class BadRequest(Exception):
    """The request is not an Exotel SMS; ``reason`` is one line for the client."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(slots=True)  # not frozen: built per request; frozen init is 3x slower
class AppletRequest:
    """The parameters of one applet call, decoded but not yet interpreted."""

    sms_sid: str
    sender: str
    recipient: str
    date: str
    body: str
    query: str


def _decode(raw: bytes) -> str:
    # As a form (forms.text); NUL is replaced too: no SMS carries one, and PostgreSQL text
    # cannot hold it.
    text = forms.text(raw)
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def peek_sid(query: bytes) -> str | None:
    """The SmsSid of a query string, found without parsing the rest (``None``: not plain).

    Used to replay a stored answer at once: every request for a SmsSid after the first gets
    the first one's answer, whatever else it carries.
    """
    if query.startswith(b"SmsSid="):
        start = 7
    else:
        found = query.find(b"&SmsSid=")
        if found < 0:
            return None
        start = found + 8
    end = query.find(b"&", start)
    raw = query[start:] if end < 0 else query[start:end]
    if not raw or raw.find(b"%") >= 0 or raw.find(b"+") >= 0 or not raw.isascii():
        return None  # odd ones go through the full parser
    return raw.decode("ascii")


def parse_query(query: bytes, *, max_body_chars: int, max_query_bytes: int) -> AppletRequest | None:
    """Parse an applet query string. ``None`` means a URL check (no ``SmsSid``).

    Raises :class:`BadRequest` for anything that cannot be an SMS from Exotel.
    """
    if len(query) > max_query_bytes:
        raise BadRequest(f"query string longer than {max_query_bytes} bytes", status=414)
    values: dict[str, str] = {}
    if query:
        for pair in query.split(b"&"):
            if not pair:
                continue
            name_raw, _, value_raw = pair.partition(b"=")
            name = _decode(name_raw)
            if name not in _FIELDS:
                continue  # Exotel may add parameters one day; they are kept in the raw query
            value = _decode(value_raw)
            if name in values and values[name] != value:
                raise BadRequest(f"{name} given twice with different values")
            values[name] = value
    return checked(values, query, max_body_chars=max_body_chars)


def checked(values: dict[str, str], query: bytes, *, max_body_chars: int) -> AppletRequest | None:
    """The applet's fields (``SmsSid, From, To, Date, Body``, decoded) as an SMS, through
    every check of :func:`parse_query`; ``query``: the raw request, as it is stored."""
    sid = values.get("SmsSid", "")
    if not sid:
        return None
    if len(sid) > SID_MAX_LEN or not sid.isascii() or not sid.isprintable() or " " in sid:
        raise BadRequest(f"SmsSid must be 1 to {SID_MAX_LEN} printable ASCII characters")
    sender = values.get("From", "")
    if not sender.strip():
        raise BadRequest("missing From")
    for name in ("From", "To", "Date"):
        value = values.get(name, "")
        if len(value) > FIELD_MAX_LEN:
            raise BadRequest(f"{name} longer than {FIELD_MAX_LEN} characters")
        if not value.isprintable():
            raise BadRequest(f"{name} contains control characters")
    body = values.get("Body", "")
    if len(body) > max_body_chars:
        raise BadRequest(f"Body longer than {max_body_chars} characters")
    return AppletRequest(
        sms_sid=sid,
        sender=sender,
        recipient=values.get("To", ""),
        date=values.get("Date", ""),
        body=body,
        query=_redact(query.decode("utf-8", errors="backslashreplace").replace("\x00", "\\x00")),
    )


def _redact(query: str) -> str:
    # A webhook token given as ?token= is a secret: it is never stored or shown.
    if "token=" not in query:
        return query
    return "&".join("token=REDACTED" if p.startswith("token=") else p for p in query.split("&"))


def answer_headers(body: bytes) -> list[tuple[bytes, bytes]]:
    """The headers of an answer carrying ``body``; the same for HEAD and GET."""
    return [(b"content-type", CONTENT_TYPE), (b"content-length", b"%d" % len(body))]


IST = timezone(timedelta(hours=5, minutes=30))  # Exotel's v1 timestamps are India time
_V1_DATE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


def parse_exotel_date(raw: str) -> datetime | None:
    """Read Exotel's ``Date``: ``YYYY-MM-DD HH:MM:SS`` in India time, or ISO 8601.

    The applet's format is not documented; anything else gives ``None`` (the raw text is
    always stored).
    """
    text = raw.strip()
    if not text or len(text) > 40:
        return None
    try:
        if _V1_DATE.match(text):  # sliced by hand: strptime costs ten times as much
            return datetime(
                int(text[0:4]),
                int(text[5:7]),
                int(text[8:10]),
                int(text[11:13]),
                int(text[14:16]),
                int(text[17:19]),
                tzinfo=IST,
            )
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=IST)
