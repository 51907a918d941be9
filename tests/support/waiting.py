"""Waiting for something a real process does: polled, bounded, failing with a reason."""

from __future__ import annotations

import time
from collections.abc import Callable

POLL = 0.05  # seconds between looks


def wait_for(check: Callable[[], bool], seconds: float = 15, what: str = "the condition") -> None:
    """Return once ``check()`` is true; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:g} s waiting for {what}")
        time.sleep(POLL)
