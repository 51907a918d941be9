"""The shape of one ``[[rules]]`` table, declared once with pydantic.

Types, defaults and unknown keys are checked here; what a rule means (one match, one
action, known template variables, shadowed rules) is checked by :mod:`exosms.rules`.
Every shape problem becomes one line with a hint, in the words of the rules file.
"""

from __future__ import annotations

import difflib
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    ValidationError,
)

MATCH_KEYS = ("keyword", "regex", "default", "python")
ACTION_KEYS = ("reply", "no_reply", "upstream", "handler")
OTHER_KEYS = (
    "name",
    "aliases",
    "only_keyword",
    "to",
    "from",
    "state",
    "set_state",
    "state_ttl",
    "fallback",
    "notify",
)
KNOWN_KEYS = MATCH_KEYS + ACTION_KEYS + OTHER_KEYS
UPSTREAM_KEYS = ("url", "method", "timeout")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(value: Any) -> float:
    """``600``, ``"600"``, ``"10m"``, ``"2h"`` or ``"1d"`` in seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    found = _DURATION.match(str(value))
    if found is None:
        raise ValueError(f"{value!r} is not a duration like 600, '10m' or '2h'")
    return float(found.group(1)) * _UNITS[found.group(2)]


def _as_list(value: Any) -> Any:
    if value is None:
        return []
    if isinstance(value, str | int) and not isinstance(value, bool):
        return [str(value)]
    if isinstance(value, list):
        return [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
    return value


def _as_text(value: Any) -> Any:  # keyword = 42 is the word "42"
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _as_upstream(value: Any) -> Any:  # upstream = "https://..." is the url alone
    return {"url": value} if isinstance(value, str) else value


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def _positive_duration(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError("must be positive")
    return seconds


Words = Annotated[list[StrictStr], BeforeValidator(_as_list)]


class Upstream(BaseModel):
    """``upstream = { url = ..., method = "GET", timeout = 1.5 }``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: StrictStr
    method: Annotated[Literal["GET", "POST"], BeforeValidator(_upper)] = "GET"
    timeout: float = Field(1.5, gt=0)


class RuleTable(BaseModel):
    """One ``[[rules]]`` table: a way to match, an action, and what narrows them."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    keyword: Annotated[StrictStr | None, BeforeValidator(_as_text)] = None
    aliases: Words = []
    regex: StrictStr | None = None
    default: StrictBool = False
    python: StrictStr | None = None
    reply: StrictStr | None = None
    no_reply: StrictBool = False
    upstream: Annotated[Upstream | None, BeforeValidator(_as_upstream)] = None
    handler: StrictStr | None = None
    name: Annotated[StrictStr | None, BeforeValidator(_as_text)] = None
    only_keyword: StrictBool = False
    to: Words = []
    senders: Words = Field([], alias="from")
    state: StrictStr | None = None
    set_state: StrictStr | None = None
    state_ttl: Annotated[float | None, BeforeValidator(_positive_duration)] = None
    fallback: StrictStr | None = None
    notify: StrictBool = False  # tell a person of every message it answers ([notify])

    @property
    def words(self) -> list[str]:
        """The keyword and its aliases."""
        return [] if self.keyword is None else [self.keyword, *self.aliases]


def written(data: dict[str, Any], keys: tuple[str, ...]) -> list[str]:
    """Which of ``keys`` a table sets, as written (before its problems are left out)."""
    return [key for key in keys if data.get(key) not in (None, False)]


def read_table(data: dict[str, Any]) -> tuple[RuleTable, list[tuple[str, str]]]:
    """The table ``data`` describes, and each shape problem as (message, hint).

    A value with a problem is left out (as if not written: ``upstream.method`` alone, or
    the whole key), so that the rest of the table can still be checked and every problem
    reported at once.
    """
    problems: list[tuple[str, str]] = []
    kept = dict(data)
    for _ in range(3):  # a value left out can reveal at most one more level of problems
        try:
            return RuleTable.model_validate(kept), problems
        except ValidationError as error:
            for found in error.errors():
                problems.append(_problem(found))
                _leave_out(kept, [str(part) for part in found["loc"]])
    return RuleTable(), problems


def _leave_out(data: dict[str, Any], loc: list[str]) -> None:
    upstream = data.get("upstream")
    if len(loc) == 2 and loc[0] == "upstream" and loc[1] != "url" and isinstance(upstream, dict):
        data["upstream"] = {k: v for k, v in upstream.items() if k != loc[1]}
        return
    if loc:
        data.pop(loc[0], None)


def _problem(found: Any) -> tuple[str, str]:
    loc = [str(part) for part in found["loc"]]
    kind = found["type"]
    key = loc[0] if loc else "?"
    if kind == "extra_forbidden" and len(loc) == 1:
        close = difflib.get_close_matches(key, KNOWN_KEYS, n=1)
        return f"unknown key {key!r}", f"did you mean {close[0]!r}?" if close else ""
    if key == "upstream":
        return _upstream_problem(loc[1:], kind, found)
    if kind in ("string_type", "list_type") or (kind == "model_type"):
        return f"{key} must be text" + (" or a list of texts" if kind == "list_type" else ""), ""
    if kind == "bool_type":
        return f"{key} must be true or false", ""
    if key == "state_ttl":
        cause = found.get("ctx", {}).get("error")
        return (f"state_ttl {cause}" if str(cause) == "must be positive" else str(cause)), ""
    return f"{'.'.join(loc)}: {found['msg']}", ""


def _upstream_problem(loc: list[str], kind: str, found: Any) -> tuple[str, str]:
    if not loc or (loc == ["url"] and kind == "missing"):
        return "upstream needs a url", 'upstream = { url = "https://..." }'
    key = loc[0]
    if kind == "extra_forbidden":
        return f"unknown upstream key {key!r}", f"use {', '.join(UPSTREAM_KEYS)}"
    if key == "method":
        return f"upstream method {found['input']!r} must be GET or POST", ""
    if key == "timeout":
        if kind == "greater_than":
            return "upstream timeout must be positive", ""
        return "upstream timeout must be a number of seconds", ""
    return f"upstream {key} must be text", ""


def notify_names(entries: list[Any]) -> frozenset[str]:
    """The names (as stored with each message) of the rules marked ``notify = true``."""
    names = set()
    for number, entry in enumerate(entries, start=1):
        if isinstance(entry, dict) and entry.get("notify") is True:
            table, _ = read_table(entry)
            names.add((table.name or table.keyword or f"rule{number}").lower())
    return frozenset(names)
