"""What the inbox pages and the API accept in a query string or form, checked once.

Every bad value is a :class:`BadFilter` whose message names the parameter and says why:
the pages show it, the API answers it as a 400.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from starlette.datastructures import FormData, QueryParams
from starlette.requests import Request

from exosms.store.inbox import DLT_VERDICTS, OUTCOMES, Filters


class BadFilter(ValueError):
    """A search parameter that makes no sense; the message says which and why."""


def parse_filters(params: QueryParams | FormData, zone: ZoneInfo) -> Filters:
    """Filters from a query string. Dates are days (YYYY-MM-DD) in the display zone; ``to``
    includes its whole day."""

    def get(name: str) -> str:
        if len(params.getlist(name)) > 1:
            raise BadFilter(f"{name}: given more than once")
        value = params.get(name)
        return value.strip() if isinstance(value, str) else ""

    def day(name: str) -> float | None:
        value = get(name)
        if not value:
            return None
        try:
            parsed = parse_day(value)
        except ValueError:
            raise BadFilter(
                f"{name}: {value!r} is not a date (DD/MM/YYYY, or YYYY-MM-DD)"
            ) from None
        return datetime(parsed.year, parsed.month, parsed.day, tzinfo=zone).timestamp()

    outcome, dlt = get("outcome"), get("dlt")
    if outcome and outcome not in OUTCOMES:
        raise BadFilter(f"outcome: {outcome!r} is not one of {', '.join(OUTCOMES)}")
    if dlt and dlt not in DLT_VERDICTS:
        raise BadFilter(f"dlt: {dlt!r} is not one of {', '.join(DLT_VERDICTS)}")
    text = get("q")
    if len(text) > 200:
        raise BadFilter("q: at most 200 characters")
    number = get("number")
    if len(number) > 32:
        raise BadFilter("number: at most 32 characters")
    rule = get("rule")
    if len(rule) > 200:
        raise BadFilter("rule: at most 200 characters")
    until = day("to")
    return Filters(
        text=text,
        number=number,
        since=day("from"),
        until=until + 86400 if until is not None else None,
        outcome=outcome,
        rule=rule,
        dlt=dlt,
    )


MAX_ID = 2**63 - 1  # ids are 64-bit on every database (migration 0011)


def parse_day(value: str) -> date:
    """A day written the Indian way (``25/12/2026``, ``25-12-2026``, ``25.12.2026``: day
    first) or as ISO ``2026-12-25`` (links and the API)."""
    parts = value.replace("-", "/").replace(".", "/").split("/")
    if len(parts) == 3 and len(parts[0]) == 4:
        return date.fromisoformat(value)
    if len(parts) != 3 or not all(p.isascii() and p.isdigit() for p in parts) or len(parts[2]) != 4:
        raise ValueError(value)
    return date(int(parts[2]), int(parts[1]), int(parts[0]))


def parse_int(
    params: QueryParams | FormData, name: str, default: int | None, low: int, high: int
) -> int | None:
    """A bounded whole number written in ASCII digits (``int()`` alone also takes ``١٢``,
    ``1_000`` and spaces)."""
    if name not in params:
        return default
    if len(params.getlist(name)) > 1:
        raise BadFilter(f"{name}: given more than once")
    value = params[name]
    if not isinstance(value, str):
        raise BadFilter(f"{name}: not a whole number")
    digits = value[1:] if value.startswith("-") else value
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 19:
        raise BadFilter(f"{name}: {value[:40]!r} is not a whole number")
    number = int(value)
    if not low <= number <= high:
        raise BadFilter(f"{name}: must be between {low} and {high}")
    return number


def check_text(request: Request, form: FormData | None = None) -> None:
    """Refuse (400) a NUL character anywhere in the path, the query or the form: no
    database stores one, and PostgreSQL refuses it with an error."""
    for name, value in request.path_params.items():
        if "\x00" in str(value):
            raise BadFilter(f"{name}: contains a NUL character")
    for name, value in request.query_params.multi_items():
        if "\x00" in name or "\x00" in value:
            raise BadFilter(f"{name[:40]!r}: contains a NUL character")
    for name, item in form.multi_items() if form is not None else ():
        if "\x00" in name or (isinstance(item, str) and "\x00" in item):
            raise BadFilter(f"{name[:40]!r}: contains a NUL character")


def filter_query(params: QueryParams, **changes: Any) -> str:
    """The query string of ``params`` with ``changes`` (None removes a parameter)."""
    keep = {key: value for key, value in params.items() if value}
    for key, value in changes.items():
        if value is None:
            keep.pop(key, None)
        else:
            keep[key] = str(value)
    return urlencode(keep)


def form_text(form: FormData, name: str, limit: int = 64) -> str:
    """A form field stripped and cut to ``limit`` characters ("" when absent, or a file)."""
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""
