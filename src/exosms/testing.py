"""Conversation scripts: test reply logic the way customers use it.

A script reads like an SMS thread::

    # the customer asks, the business answers
    9052161119 > ORDER 12
    < Order 12 is out for delivery
    9052161119 > ORDER
    <~ Send ORDER followed by .*
    9052161119 > thanks
    <

``SENDER > TEXT`` sends an SMS (``SENDER@RECIPIENT > TEXT`` picks the Exotel number too).
The line after it says what must come back: ``< TEXT`` exactly, ``<~ REGEX`` a full regex
match, and ``<`` alone no reply at all. ``\\n`` in a text is a newline; ``#`` starts a comment.

Run a script against a URL with ``exosms simulate URL --script chat.txt``, or from pytest::

    from exosms.testing import converse
    from shop import router

    def test_order_status():
        converse(router, '''
            9052161119 > ORDER 1001
            <~ Order 1001 .* out for delivery.*
        ''')
"""

from __future__ import annotations

import asyncio
import difflib
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exosms.dlt import TemplateRegistry
from exosms.exotel.caller import AppletSms
from exosms.routing import Router
from exosms.simulate import (
    DEFAULT_BUDGET,
    DEFAULT_MAX_PARTS,
    SmsCheck,
    Target,
    app_target,
    check_sms,
)

__all__ = [
    "ScriptError",
    "Turn",
    "TurnResult",
    "converse",
    "parse_script",
    "run_script",
]  # public: see exosms/__init__.py

_SEND = re.compile(r"^(?P<sender>[^\s@>]+)(?:@(?P<recipient>[^\s>]+))?\s*>\s?(?P<body>.*)$")

DEFAULT_RECIPIENT = "56070"
RELAXED_GUARDS = {"replies_per_10min": 0, "replies_per_day": 0, "loop_window_seconds": 0}


class ScriptError(ValueError):
    """A line of a conversation script cannot be read; the message names the line."""


@dataclass(frozen=True, slots=True)
class Turn:
    """One SMS of a script and what must come back."""

    line: int
    sender: str
    recipient: str | None
    body: str
    expect: str | None  # None: no reply expected
    is_regex: bool = False
    is_checked: bool = True


@dataclass(frozen=True, slots=True)
class TurnResult:
    """One turn of a script, and what the server answered to it."""

    turn: Turn
    check: SmsCheck

    @property
    def reply(self) -> str | None:
        """The reply the server gave (None: no reply)."""
        return self.check.reply

    @property
    def matches(self) -> bool:
        """Whether the reply is the one the script expects."""
        if not self.turn.is_checked:
            return True
        if self.turn.expect is None:
            return self.reply is None
        if self.reply is None:
            return False
        if self.turn.is_regex:
            return re.fullmatch(self.turn.expect, self.reply, re.DOTALL) is not None
        return self.reply == self.turn.expect

    @property
    def ok(self) -> bool:
        """Expected reply, and the exchange kept Exotel's contract."""
        return self.matches and self.check.ok

    def explain(self) -> str:
        """What went wrong, with a diff of expected and received replies."""
        lines = [f"line {self.turn.line}: {self.turn.sender} > {self.turn.body}"]
        if not self.matches:
            wanted = "(no reply)" if self.turn.expect is None else self.turn.expect
            got = "(no reply)" if self.reply is None else self.reply
            if self.turn.is_regex:
                lines.append(f"  expected a reply matching /{wanted}/")
                lines.append(f"  got: {got}")
            else:
                diff = difflib.unified_diff(
                    wanted.splitlines() or [""],
                    got.splitlines() or [""],
                    "expected",
                    "received",
                    lineterm="",
                )
                lines += ["  " + d for d in diff]
        for v in self.check.violations:
            lines.append(f"  {v.severity}: {v.message}")
        return "\n".join(lines)


def _unescape(text: str) -> str:
    return text.replace("\\n", "\n")


def parse_script(text: str) -> list[Turn]:
    """Read a conversation script; raises :class:`ScriptError` naming the bad line."""
    turns: list[Turn] = []
    pending: dict[str, Any] | None = None

    def flush(expect: str | None, is_regex: bool, is_checked: bool) -> None:
        nonlocal pending
        assert pending is not None
        turns.append(Turn(**pending, expect=expect, is_regex=is_regex, is_checked=is_checked))
        pending = None

    for number, raw in enumerate(textwrap.dedent(text).splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("<"):
            if pending is None:
                raise ScriptError(f"line {number}: a reply ('<') with no SMS ('>') before it")
            if line.startswith("<~"):
                pattern = _unescape(line[2:].strip())
                try:
                    re.compile(pattern)
                except re.error as error:
                    raise ScriptError(f"line {number}: bad regex: {error}") from None
                flush(pattern, True, True)
            else:
                expected = line[1:]
                expected = expected[1:] if expected.startswith(" ") else expected
                flush(_unescape(expected) or None, False, True)
            continue
        found = _SEND.match(line)
        if found is None:
            raise ScriptError(
                f"line {number}: expected 'SENDER > TEXT', '< REPLY' or '<~ REGEX', got {line!r}"
            )
        if pending is not None:
            flush(None, False, False)  # an SMS whose reply the script does not check
        pending = {
            "line": number,
            "sender": found["sender"],
            "recipient": found["recipient"],
            "body": _unescape(found["body"]),
        }
    if pending is not None:
        flush(None, False, False)
    if not turns:
        raise ScriptError("the script has no SMS ('SENDER > TEXT') in it")
    return turns


async def run_script(
    target: Target,
    turns: Sequence[Turn],
    *,
    recipient: str = DEFAULT_RECIPIENT,
    budget: float = DEFAULT_BUDGET,
    max_parts: int = DEFAULT_MAX_PARTS,
    registry: TemplateRegistry | None = None,
) -> list[TurnResult]:
    """Send each SMS in order (HEAD then GET, as Exotel does) and record what came back."""
    results = []
    for turn in turns:
        sms = AppletSms(sender=turn.sender, recipient=turn.recipient or recipient, body=turn.body)
        check = await check_sms(
            target, sms, budget=budget, max_parts=max_parts, repeat=False, registry=registry
        )
        results.append(TurnResult(turn, check))
    return results


def converse(
    router: Router | str,
    script: str | Path,
    *,
    recipient: str = DEFAULT_RECIPIENT,
    **settings: Any,
) -> list[TurnResult]:
    """Run a conversation script through ``router`` in process; fail with a diff on mismatch.

    ``settings`` override exosms settings for the run (e.g. ``reply_deadline=0.5``).
    Each call starts from an empty database. Reply caps and loop protection are off unless
    ``guards`` is given: a script is one tester sending many SMS quickly, by design.
    """
    settings.setdefault("guards", RELAXED_GUARDS)
    text = script.read_text(encoding="utf-8") if isinstance(script, Path) else script
    turns = parse_script(text)

    async def run() -> list[TurnResult]:
        async with app_target(router, **settings) as target:
            return await run_script(target, turns, recipient=recipient)

    results = asyncio.run(run())
    failures = [r.explain() for r in results if not r.ok]
    if failures:
        raise AssertionError("conversation did not go as scripted:\n" + "\n".join(failures))
    return results
