"""Running a rule's handler: a bounded number at once, each within the reply deadline.

An async handler runs on the event loop; a plain function gets a thread of its own pool (a
hung one holds one thread, and logins, reloads and queries keep the default executor). A
handler that misses the deadline gets the fallback sent in its place; it is cancelled, or,
when late replies go out through Exotel's API, left to finish and its reply handed on.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import logging
import time
from collections.abc import Callable
from typing import Any

from exosms import dlt
from exosms.dlt import TemplateRegistry
from exosms.outcomes import Outcome
from exosms.result import Result, clean_reply
from exosms.routing import Router, Rule
from exosms.sms import IncomingSms, Match, Reply

log = logging.getLogger("exosms.engine")

LateReply = Callable[[IncomingSms, str], None]  # a late handler's reply, to be queued


class HandlerRunner:
    """Runs the handler a router picks and says what came of it, as a :class:`Result`."""

    def __init__(
        self,
        *,
        deadline: float,
        fallback: str | None,
        registry: Callable[[], TemplateRegistry],
        max_concurrent: int = 100,
        threads: int = 32,
        late_reply: LateReply | None = None,
    ) -> None:
        self.deadline = deadline
        self.fallback = fallback
        self.registry = registry  # the DLT registry in force, for Reply.template
        self.threads = threads
        self.late_reply = late_reply
        self._slots = asyncio.Semaphore(max_concurrent)
        self._pool = concurrent.futures.ThreadPoolExecutor(
            threads, thread_name_prefix="exosms-handler"
        )

    def shutdown(self) -> None:
        """Let the handler threads go (a running handler finishes on its own)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def run(
        self,
        router: Router,
        sms: IncomingSms,
        state: str | None,
        found: tuple[Rule, Match] | None = None,
    ) -> Result:
        """The reply of the handler ``router`` picks for ``sms`` in session ``state`` (or of
        ``found``, the rule and match it picked already)."""
        if found is None:
            found = router.route(sms, state)
        if found is None:
            return Result(None, None, Outcome.NO_REPLY)
        rule, match = found
        started = time.perf_counter()
        try:
            if self._slots.locked():  # all slots busy: wait, but not past the deadline
                await asyncio.wait_for(self._slots.acquire(), self.deadline)
            else:
                await self._slots.acquire()
        except TimeoutError:
            why = "too many handlers running: no slot within the deadline"
            log.warning("sid=%s %s", sms.sms_sid, why)
            elapsed_ms = (time.perf_counter() - started) * 1000
            return Result(self.fallback, rule.name, Outcome.HANDLER_NOT_STARTED, elapsed_ms, why)
        dlt.set_active(self.registry())  # Reply.template renders with it (context copied)
        task, thread_job = self._invoke(rule, sms, match)
        task.add_done_callback(lambda _: self._slots.release())
        remaining = max(0.0, self.deadline - (time.perf_counter() - started))
        done, _ = await asyncio.wait({task}, timeout=remaining)
        elapsed_ms = (time.perf_counter() - started) * 1000
        if not done and thread_job is not None and thread_job.cancel():
            why = f"all {self.threads} handler threads were busy: the handler did not start"
            log.warning("sid=%s handler %s did not start: %s", sms.sms_sid, rule.name, why)
            return Result(self.fallback, rule.name, Outcome.HANDLER_NOT_STARTED, elapsed_ms, why)
        if not done:
            return self._missed(task, sms, rule.name, elapsed_ms)
        error = task.exception()
        if error is not None:
            log.error("handler %s failed for %s: %s", rule.name, sms.sms_sid, error, exc_info=error)
            return Result(
                self.fallback, rule.name, Outcome.FALLBACK_ERROR, elapsed_ms, describe(error)
            )
        return _returned(task.result(), sms, rule.name, elapsed_ms, self.fallback)

    def _invoke(
        self, rule: Rule, sms: IncomingSms, match: Match
    ) -> tuple[asyncio.Future[Any], concurrent.futures.Future[Any] | None]:
        """Start the handler; a plain function goes to the handler threads (the job is
        returned too: it can still be cancelled while it waits for a thread)."""
        if rule.is_async:
            return asyncio.ensure_future(rule.handler(sms, match)), None  # type: ignore[arg-type]
        context = contextvars.copy_context()  # as asyncio.to_thread does: DLT registry, ...
        job = self._pool.submit(context.run, rule.handler, sms, match)
        return asyncio.wrap_future(job), job

    def _missed(
        self, task: asyncio.Future[Any], sms: IncomingSms, rule: str, elapsed_ms: float
    ) -> Result:
        if self.late_reply is not None:
            # The handler keeps running: its reply goes out through the API when ready.
            task.add_done_callback(self._when_late(sms, rule, self.late_reply))
        else:
            task.cancel()
            task.add_done_callback(_log_late(sms.sms_sid, rule))
        log.warning(
            "handler %s missed the %.2fs deadline for %s: fallback sent",
            rule,
            self.deadline,
            sms.sms_sid,
        )
        why = f"handler ran past the {self.deadline:g}s deadline"
        return Result(self.fallback, rule, Outcome.FALLBACK_TIMEOUT, elapsed_ms, why)

    @staticmethod
    def _when_late(
        sms: IncomingSms, rule: str, late_reply: LateReply
    ) -> Callable[[asyncio.Future[Any]], None]:
        def finished(task: asyncio.Future[Any]) -> None:
            if task.cancelled() or task.exception() is not None:
                _log_late(sms.sms_sid, rule)(task)
                return
            value = task.result()
            text = value.text if isinstance(value, Reply) else value
            if not isinstance(text, str) or not text:
                log.info("late handler %s for %s finished with no reply", rule, sms.sms_sid)
                return
            late_reply(sms, clean_reply(text))

        return finished


def fixed_result(rule: Rule, sms: IncomingSms, match: Match, fallback: str | None) -> Result | None:
    """What ``rule``'s :class:`~exosms.routing.Fixed` reply is for ``sms``, worked out at
    once; ``None`` when it is no fixed reply or failed (the usual run then reports it)."""
    fixed = rule.fixed
    if fixed is None:
        return None
    started = time.perf_counter()
    try:
        value = fixed.render(sms, match)
    except Exception:
        return None
    return _returned(value, sms, rule.name, (time.perf_counter() - started) * 1000, fallback)


def _returned(
    value: Any, sms: IncomingSms, rule: str, elapsed_ms: float, fallback: str | None
) -> Result:
    """What a handler's return value means."""
    if isinstance(value, Reply) and value.error is not None:
        log.warning("rule %s for %s fell back: %s", rule, sms.sms_sid, value.error)
        text = clean_reply(value.text) or None
        return Result(text, rule, Outcome.FALLBACK_ERROR, elapsed_ms, value.error)
    if isinstance(value, Reply):
        value = value.text
    if value is not None and not isinstance(value, str):
        message = f"handler returned {type(value).__name__}, not str, Reply or None"
        log.error("handler %s for %s: %s", rule, sms.sms_sid, message)
        return Result(fallback, rule, Outcome.FALLBACK_ERROR, elapsed_ms, message)
    reply = clean_reply(value) if value else None
    return Result(reply, rule, Outcome.REPLIED if reply else Outcome.NO_REPLY, elapsed_ms)


def describe(error: BaseException) -> str:
    """One line for a handler's exception, at most 500 characters."""
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= 500 else text[:497] + "..."


def _log_late(sid: str, rule: str) -> Callable[[asyncio.Future[Any]], None]:
    def report(task: asyncio.Future[Any]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            log.warning("late handler %s for %s failed: %s", rule, sid, describe(error))
        else:
            log.info("late handler %s for %s finished after the fallback was sent", rule, sid)

    return report
