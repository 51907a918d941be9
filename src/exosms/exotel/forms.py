"""Forms (``application/x-www-form-urlencoded``), as Exotel sends and reads them.

Exotel's webhooks and status callbacks come as forms and its send API takes one; the
applet's query string is the same encoding. ``urllib.parse`` quotes and unquotes every name
and value in pure Python, a sixth of a send's CPU and as much of a callback's: here a name
or value with nothing to quote or unquote (most of them) is used as it is, and the bytes and
fields are the standard library's (tested against it with generated input).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import quote_plus, unquote_to_bytes

_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")  # what quote_plus leaves as it is


def encode(data: Mapping[str, str]) -> bytes:
    """``urllib.parse.urlencode(data).encode()``, byte for byte."""
    return "&".join(
        f"{k if _UNRESERVED.fullmatch(k) else quote_plus(k)}="
        f"{v if _UNRESERVED.fullmatch(v) else quote_plus(v)}"
        for k, v in data.items()
    ).encode()


def text(raw: bytes) -> str:
    """One encoded name or value: ``+`` is a space, ``%XX`` a byte (an invalid one stays as
    typed), and invalid UTF-8 becomes U+FFFD."""
    # find(), not `in`: on Python 3.11 `bytes in bytes` first fails to read it as an int.
    if raw.find(b"%") >= 0:
        raw = unquote_to_bytes(raw.replace(b"+", b" "))
    elif raw.find(b"+") >= 0:
        raw = raw.replace(b"+", b" ")
    return raw.decode("utf-8", errors="replace")


def decode(raw: bytes) -> dict[str, str]:
    """The fields of a form, a name given twice keeping its last value: for valid UTF-8,
    ``dict(parse_qsl(raw.decode(), keep_blank_values=True))``."""
    fields: dict[str, str] = {}
    for pair in raw.split(b"&"):
        if pair:
            name, _, value = pair.partition(b"=")
            fields[text(name)] = text(value)
    return fields
