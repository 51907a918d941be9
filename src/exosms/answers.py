"""Answers this process gave or is working out, so that a repeat needs no database call.

Exotel asks for one SmsSid at least twice (HEAD, then GET, often at once) and retries:
the first request works the answer out; the others wait for it here, or take it from the
cache of recent answers.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)  # not frozen: built per request; frozen init is 3x slower
class Answer:
    """What goes back to Exotel: the reply text (``None``: no reply) and its bytes."""

    reply: str | None
    body: bytes
    outcome: str


def answer(reply: str | None, outcome: str) -> Answer:
    """The answer that sends ``reply`` (its UTF-8 bytes; none for ``None`` or "")."""
    return Answer(reply, reply.encode("utf-8") if reply else b"", outcome)


class AnswerCache:
    """The last ``size`` answers by SmsSid, and the answers being worked out right now."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.replies: OrderedDict[str, str | None] = OrderedDict()  # read on the hot path
        self.inflight: dict[str, asyncio.Future[Answer]] = {}

    def remember(self, sid: str, reply: str | None) -> None:
        """Keep ``reply`` as the answer for ``sid``, forgetting the oldest past ``size``."""
        if self.size <= 0:
            return
        self.replies[sid] = reply
        if len(self.replies) > self.size:
            self.replies.popitem(last=False)

    async def share(self, sid: str, work: Coroutine[Any, Any, Answer]) -> Answer:
        """Run ``work`` for ``sid``; requests for ``sid`` meanwhile wait for its answer
        (or its error) in :attr:`inflight`. The answer is remembered."""
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self.inflight[sid] = future
        try:
            result = await work
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: followers re-raise it, nobody else needs it
            raise
        else:
            future.set_result(result)
            self.remember(sid, result.reply)
            return result
        finally:
            del self.inflight[sid]
