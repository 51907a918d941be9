"""Routers the tests run inside real `exosms serve` processes.

Every handler call appends the SmsSid to the file named by $EXOSMS_TEST_CALLS, so a test in
another process can count how often the reply logic ran.
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from collections.abc import Callable
from typing import Any

from exosms import IncomingSms, Match, Reply, Router

router = Router()


def counted(handler: Callable[..., Any]) -> Callable[..., Any]:
    def note(sms: IncomingSms) -> None:
        path = os.environ.get("EXOSMS_TEST_CALLS")
        if path:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, (sms.sms_sid + "\n").encode())
            finally:
                os.close(fd)

    if asyncio.iscoroutinefunction(handler):

        @functools.wraps(handler)
        async def run_async(sms: IncomingSms, match: Match) -> Any:
            note(sms)
            return await handler(sms, match)

        return run_async

    @functools.wraps(handler)
    def run(sms: IncomingSms, match: Match) -> Any:
        note(sms)
        return handler(sms, match)

    return run


@router.keyword("ECHO")
@counted
async def echo(sms: IncomingSms, match: Match) -> str | None:
    return match.rest or None


@router.keyword("SLOWECHO")
@counted
async def slow_echo(sms: IncomingSms, match: Match) -> str:
    await asyncio.sleep(0.2)
    return f"{match.rest} ({sms.sms_sid})"


@router.keyword("SLEEP")
@counted
async def sleep(sms: IncomingSms, match: Match) -> str:
    await asyncio.sleep(float(match.rest or "5"))
    return "too late"


@router.keyword("LATEORDER")
@counted
async def late_order(sms: IncomingSms, match: Match) -> str:
    await asyncio.sleep(float(match.rest or "1"))
    return "Order 77 is out for delivery. -ACME"


@router.keyword("BLOCK")
@counted
def block(sms: IncomingSms, match: Match) -> str:
    time.sleep(float(match.rest or "5"))
    return "too late"


@router.keyword("BOOM")
@counted
async def boom(sms: IncomingSms, match: Match) -> str:
    raise RuntimeError("the order database is down")


@router.keyword("WRONGTYPE")
@counted
async def wrong_type(sms: IncomingSms, match: Match) -> Any:
    return 42


@router.keyword("FROM")
@counted
def sender(sms: IncomingSms, match: Match) -> Reply:
    return Reply(f"{sms.sender} {sms.sender_raw!r} -> {sms.recipient}")


@router.keyword("नमस्ते")
@counted
async def namaste(sms: IncomingSms, match: Match) -> str:
    return f"नमस्ते 🙏 {match.rest}".strip()


@router.keyword("SHIPPED")
@counted
async def shipped(sms: IncomingSms, match: Match) -> Reply:
    # Compliance by construction: the reply is rendered from a registered template.
    return Reply.template("shipped", "Ram", match.rest)


@router.default
@counted
async def nothing(sms: IncomingSms, match: Match) -> None:
    return None
