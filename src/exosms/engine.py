"""The reply engine: claim the SmsSid, dispatch to the router, store the answer, replay it.

Once per SmsSid: the first request stores the message and claims the SmsSid in the
database; only the claim holder calls the handler. Requests for the same SmsSid in this
process wait on the holder's future; in another process, they wait for the stored answer.
An answer is returned only after it is durably committed, and every database call on the
way is bounded by the reply deadline.

When the answer was worked out but could not be stored (the database failed or did not
answer in time), the request fails (Exotel gets a 503) and the answer is kept: a retry is
answered with it, and the engine keeps trying to store it, so that any process can serve it
once the database is back. The handler is not called again. A claim this process holds but
no longer works on is released. Claims stay this process's own while it renews its lease;
only a claim whose owner stopped renewing may be taken over (the owner died), the one case
in which a handler may run twice.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import json
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from exosms import dlt
from exosms.dlt import TemplateRegistry, Verdict
from exosms.exotel.applet import AppletRequest, parse_exotel_date
from exosms.guards import DISPATCH, OPT_IN, OPT_OUT, Decision, Guards, GuardState
from exosms.numbers import normalise
from exosms.outcomes import Outcome
from exosms.routing import Router, Rule
from exosms.segments import segment
from exosms.sms import IncomingSms, Match, Reply, Session
from exosms.store.base import (
    OWNER_LEASE,
    AnswerPending,
    ClaimLost,
    ClaimStatus,
    Completion,
    NewMessage,
    OutboxWrite,
    SessionWrite,
    Store,
    StoreUnavailable,
)

log = logging.getLogger("exosms.engine")

CLAIM_GRACE = 1.0  # seconds past the reply deadline: a request's whole budget is deadline + this
POLL_INTERVAL = 0.02  # seconds between looks at a SmsSid another process is answering
UPKEEP_INTERVAL = OWNER_LEASE / 5  # lease renewals; retries of answers not yet stored
MIN_WRITE_TIME = 0.25  # seconds an answer's write gets even when the budget is spent
MAX_UNSAVED = 100_000  # answers kept for retry while the database is down (a few MB)
T = TypeVar("T")


@dataclass(slots=True)  # not frozen: built per request; frozen init is 3x slower
class Answer:
    """What goes back to Exotel: the reply text (``None``: no reply) and its bytes."""

    reply: str | None
    body: bytes
    outcome: str


@dataclass(frozen=True, slots=True)
class Trial:
    """The answer :meth:`ReplyEngine.try_message` worked out (nothing stored or sent)."""

    sender: str
    recipient: str
    body: str
    reply: str | None
    rule: str | None
    outcome: str
    handler_ms: float | None
    error: str | None
    encoding: str | None
    units: int | None
    parts: int | None
    template_id: str | None
    dlt_reason: str | None
    dlt_mode: str
    dlt_matched: bool | None  # None: no reply, or the DLT check is off
    guard: str | None
    session_state: str | None


@dataclass(slots=True)
class _Result:
    reply: str | None
    rule: str | None
    outcome: str
    handler_ms: float | None
    error: str | None
    encoding: str | None = None
    units: int | None = None
    parts: int | None = None
    template_id: str | None = None
    dlt_reason: str | None = None
    guard: str | None = None  # why no reply was allowed


@dataclass
class DltGate:
    """Checks every reply before it is sent: SMS parts, and DLT templates by ``mode``."""

    registry: TemplateRegistry = field(default_factory=TemplateRegistry)
    mode: str = "auto"  # auto | off | warn | enforce
    max_parts: int = 7

    @property
    def effective_mode(self) -> str:
        if self.mode == "auto":
            return "enforce" if len(self.registry) else "warn"
        return self.mode

    def verdict(self, text: str) -> Verdict | None:
        return None if self.effective_mode == "off" else self.registry.match(text)

    def is_sendable(self, text: str) -> bool:
        if segment(text).count > self.max_parts:
            return False
        verdict = self.verdict(text)
        return self.effective_mode != "enforce" or verdict is None or verdict.matched

    def check(self, result: _Result, fallback: str | None, sid: str) -> _Result:
        if result.reply is None:
            return result
        parts = segment(result.reply)
        verdict = self.verdict(result.reply)
        reason = None if verdict is None else (verdict.reason or "; ".join(verdict.warnings))
        refused = None
        if parts.count > self.max_parts:
            refused = Outcome.TOO_LONG
            why = f"reply needs {parts.count} SMS parts; at most {self.max_parts} are sent"
        elif self.effective_mode == "enforce" and verdict is not None and not verdict.matched:
            refused = Outcome.DLT_REFUSED
            why = f"DLT: {verdict.reason}"
        elif verdict is not None and not verdict.matched and len(self.registry):
            log.warning("sid=%s reply matches no DLT template (sent anyway): %s", sid, reason)
        if refused is None:
            return replace(
                result,
                encoding=parts.encoding,
                units=parts.units,
                parts=parts.count,
                template_id=verdict.template_id if verdict else None,
                dlt_reason=reason or None,
            )
        log.warning("sid=%s reply not sent: %s", sid, why)
        replacement = fallback if fallback and self.is_sendable(fallback) else None
        sent = segment(replacement) if replacement else None
        sent_verdict = self.verdict(replacement) if replacement else None
        return replace(
            result,
            reply=replacement,
            outcome=refused,
            error=why if result.error is None else f"{result.error}; {why}",
            encoding=sent.encoding if sent else None,
            units=sent.units if sent else None,
            parts=sent.count if sent else None,
            template_id=sent_verdict.template_id if sent_verdict else None,
            dlt_reason=reason,
        )


def _clean(text: str) -> str:
    # A handler may return text that UTF-8 cannot carry (lone surrogates) or that a database
    # cannot hold (NUL): store and send the same repaired text.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", errors="replace").decode("utf-8")
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def _answer(reply: str | None, outcome: str) -> Answer:
    return Answer(reply, reply.encode("utf-8") if reply else b"", outcome)


class ReplyEngine:
    """Turns applet requests into durable, exactly-once answers."""

    def __init__(
        self,
        store: Store,
        router: Router,
        *,
        deadline: float = 2.0,
        fallback: str = "",
        cache_size: int = 10_000,
        gate: DltGate | None = None,
        session_ttl: float = 1800.0,
        guards: Guards | None = None,
        max_concurrent_handlers: int = 100,
        handler_threads: int = 32,
        late_replies: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.router = router
        self.deadline = deadline
        self.fallback = _clean(fallback) or None
        self.gate = gate or DltGate()
        self.session_ttl = session_ttl
        self.guards = guards
        # Set when late replies go out through Exotel's API; called after one is queued.
        self.late_replies = late_replies
        self._late_tasks: set[asyncio.Task[None]] = set()
        self._handler_slots = asyncio.Semaphore(max_concurrent_handlers)
        # Plain (sync) handlers get threads of their own: a hung one holds one thread, and
        # logins, reloads and queries keep the default executor.
        self.handler_threads = handler_threads
        self._handler_pool = concurrent.futures.ThreadPoolExecutor(
            handler_threads, thread_name_prefix="exosms-handler"
        )
        self.owner = uuid.uuid4().hex
        self._cache: OrderedDict[str, str | None] = OrderedDict()
        self._cache_size = cache_size
        self._inflight: dict[str, asyncio.Future[Answer]] = {}
        self._unsaved: dict[str, Completion] = {}  # worked out, not (surely) stored
        self._doubtful: set[str] = set()  # claims held here that nobody here works on
        self._releasing: asyncio.Future[None] | None = None  # set while releasing them
        self._upkeep: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Take this process's lease and keep it renewed (call once the store is open)."""
        try:
            await self._bounded(self.store.renew_lease(self.owner, time.time() + OWNER_LEASE))
        except StoreUnavailable as error:
            log.warning("could not take the claim lease yet: %s", error)
        self._upkeep = asyncio.get_running_loop().create_task(self._upkeep_forever())

    async def stop(self) -> None:
        """Store what can be stored, let go of the rest, end the lease."""
        if self._upkeep is not None:
            self._upkeep.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._upkeep
            self._upkeep = None
        with contextlib.suppress(StoreUnavailable):
            await self.upkeep()
            await self._bounded(self.store.drop_lease(self.owner))
        if self._unsaved:
            log.error("%d answers could not be stored before stopping", len(self._unsaved))
        self._handler_pool.shutdown(wait=False, cancel_futures=True)

    async def _upkeep_forever(self) -> None:
        while True:
            await asyncio.sleep(UPKEEP_INTERVAL)
            try:
                await self.upkeep()
            except StoreUnavailable as error:
                log.warning("database unavailable: %s", error)
            except Exception:  # never let the lease lapse over a bug: report it, go on
                log.exception("claim upkeep failed")

    async def upkeep(self) -> None:
        """Renew the lease, store answers that could not be stored, release idle claims."""
        await self._bounded(self.store.renew_lease(self.owner, time.time() + OWNER_LEASE))
        for sid, completion in list(self._unsaved.items()):
            if sid in self._inflight:
                continue  # a retry is storing it right now
            try:
                reply = await self._store_kept(completion, time.monotonic() + self.deadline)
            except ClaimLost as error:
                log.error("sid=%s answer dropped: %s", sid, error)
                continue
            self._remember(sid, reply)
            log.info("sid=%s answer stored after the database came back", sid)
        idle = [sid for sid in self._doubtful if sid not in self._inflight]
        if idle:
            # A request for one of these waits until the release is done (see _answer_first):
            # released after its own claim, the SmsSid would be free for another process.
            self._releasing = asyncio.get_running_loop().create_future()
            try:
                await self._bounded(self.store.release(idle, self.owner))
                self._doubtful.difference_update(idle)
            finally:
                self._releasing.set_result(None)
                self._releasing = None

    async def _store_kept(self, completion: Completion, until: float) -> str | None:
        """Store an answer kept after a failed write; it is forgotten once stored, or when the
        database has lost its message (``ClaimLost``: the next request starts again)."""
        try:
            reply = await self._bounded(self.store.complete(completion), until)
        except ClaimLost:
            self._unsaved.pop(completion.sms_sid, None)
            raise
        self._unsaved.pop(completion.sms_sid, None)
        return reply

    async def _bounded(self, call: Awaitable[T], until: float | None = None) -> T:
        """Await a store call for at most ``until`` (monotonic; default the reply deadline).

        A call still running then goes on in the background (its outcome is in doubt: the
        caller treats it as failed) so that a frozen database never holds a request.
        """
        task = asyncio.ensure_future(call)
        limit = self.deadline if until is None else until - time.monotonic()
        done, _ = await asyncio.wait((task,), timeout=max(limit, 0.0))
        if not done:
            task.add_done_callback(_consume)
            raise StoreUnavailable(f"the database did not answer within {max(limit, 0.0):.1f}s")
        return task.result()

    async def replay(self, sid: str) -> Answer | None:
        """The answer for ``sid`` given or being worked out in this process, if any.

        Exotel's GET often arrives while its HEAD is still being answered: it waits for that
        answer here, before its query string is even parsed.
        """
        if sid in self._cache:
            self.store.record_fetch(sid, time.time())
            return _answer(self._cache[sid], Outcome.REPLAYED)
        pending = self._inflight.get(sid)
        if pending is None:
            return None
        try:
            answer = await asyncio.shield(pending)
        except Exception:
            return None  # the first request failed: this one tries for itself
        self.store.record_fetch(sid, time.time())
        return _answer(answer.reply, Outcome.REPLAYED)

    async def receive(
        self, request: AppletRequest, method: str, *, queue_reply: bool = False
    ) -> Answer:
        """Answer one applet request (HEAD or GET). Raises ``StoreUnavailable``.

        With ``queue_reply`` (the webhooks), the reply is queued for Exotel's send API in the
        same transaction as the answer: queued once, however often the request comes.
        """
        sid = request.sms_sid
        if sid in self._cache:
            self.store.record_fetch(sid, time.time())
            return _answer(self._cache[sid], Outcome.REPLAYED)
        pending = self._inflight.get(sid)
        if pending is not None:
            answer = await asyncio.shield(pending)
            self.store.record_fetch(sid, time.time())
            return _answer(answer.reply, Outcome.REPLAYED)
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._inflight[sid] = future
        try:
            answer = await self._answer_first(request, method, queue_reply)
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: followers re-raise it, nobody else needs it
            raise
        else:
            future.set_result(answer)
            self._remember(sid, answer.reply)
            return answer
        finally:
            del self._inflight[sid]

    def _remember(self, sid: str, reply: str | None) -> None:
        if self._cache_size <= 0:
            return
        self._cache[sid] = reply
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    async def _answer_first(self, request: AppletRequest, method: str, queue_reply: bool) -> Answer:
        received_at = time.time()
        exotel_date = parse_exotel_date(request.date)
        sms = IncomingSms(
            sms_sid=request.sms_sid,
            sender=normalise(request.sender),
            recipient=normalise(request.recipient),
            body=request.body,
            received_at=_utc(received_at),
            exotel_date=exotel_date,
            sender_raw=request.sender,
            recipient_raw=request.recipient,
            date_raw=request.date,
        )
        message = NewMessage(
            sms_sid=sms.sms_sid,
            sender=sms.sender,
            sender_raw=sms.sender_raw,
            recipient=sms.recipient,
            recipient_raw=sms.recipient_raw,
            body=sms.body,
            query=request.query,
            date_raw=sms.date_raw,
            exotel_date=exotel_date.timestamp() if exotel_date else None,
            received_at=received_at,
            method=method,
        )
        guard_query = self.guards.query(sms) if self.guards is not None else None
        sid = sms.sms_sid
        budget = time.monotonic() + self.deadline + CLAIM_GRACE
        unsaved = self._unsaved.get(sid)
        if unsaved is not None:
            # Worked out before, but not stored: store it now (never work it out again).
            return _answer(await self._store_kept(unsaved, budget), unsaved.outcome)
        if sid in self._doubtful and self._releasing is not None:
            await asyncio.wait((self._releasing,), timeout=self.deadline)
        self._doubtful.discard(sid)  # claimed again below: our own claim is simply retaken
        while True:
            expires = time.time() + self.deadline + CLAIM_GRACE
            try:
                claim = await self._bounded(
                    self.store.claim(message, self.owner, expires, guard_query),
                    min(budget, time.monotonic() + self.deadline),
                )
            except StoreUnavailable:
                self._doubtful.add(sid)  # the claim may have been stored: let it go later
                raise
            if claim.status is ClaimStatus.ANSWERED:
                return _answer(claim.reply, Outcome.REPLAYED)
            if claim.status is ClaimStatus.CLAIMED:
                break
            stored = await self._wait_for_other(sid, claim.expires or expires, budget)
            if stored is not None:
                return stored
            if time.monotonic() >= budget:
                raise AnswerPending(f"another exosms process is still answering SmsSid {sid}")
        if claim.taken_over:
            log.warning("sid=%s taken over from a process whose lease ran out", sid)
        try:
            decision = DISPATCH
            if self.guards is not None and guard_query is not None and claim.guard is not None:
                decision = self.guards.decide(sms, guard_query, claim.guard)
            if decision.action == "suppress":
                log.info("sid=%s no reply: %s", sid, decision.reason)
            result, sms, _ = await self._work_out(sms, decision)
        except BaseException:
            self._doubtful.add(sid)  # claimed, but no answer worked out: let it go
            raise
        completion = Completion(
            sms_sid=sid,
            reply=result.reply,
            rule=result.rule,
            outcome=result.outcome,
            handler_ms=result.handler_ms,
            error=result.error,
            answered_at=time.time(),
            reply_encoding=result.encoding,
            reply_units=result.units,
            reply_parts=result.parts,
            dlt_template_id=result.template_id,
            dlt_reason=result.dlt_reason,
            guard=result.guard,
            session=self._session_write(sms),
            outbox=OutboxWrite(sms.sender, result.reply, result.template_id, result.parts)
            if queue_reply and result.reply
            else None,
        )
        try:
            reply = await self._bounded(
                self.store.complete(completion),
                max(budget, time.monotonic() + MIN_WRITE_TIME),
            )
        except StoreUnavailable:
            if len(self._unsaved) < MAX_UNSAVED:
                self._unsaved[sid] = completion  # a retry is answered with it; upkeep stores it
            else:
                self._doubtful.add(sid)
            raise
        return _answer(reply, result.outcome)

    async def _work_out(
        self, sms: IncomingSms, decision: Decision
    ) -> tuple[_Result, IncomingSms, str | None]:
        """The checked reply a guard decision leads to, the message (with its session when
        the router uses sessions) and the session's state before this message."""
        if decision.action == "suppress":
            return (
                _Result(None, None, Outcome.SUPPRESSED, None, None, guard=decision.reason),
                sms,
                None,
            )
        if decision.action == "reply":
            assert decision.outcome is not None
            wanted = _Result(decision.reply, decision.rule, decision.outcome, None, None)
            return self.gate.check(wanted, None, sms.sms_sid), sms, None
        router = self.router  # one router for the whole request, even if rules reload
        state = None
        if router.uses_sessions:
            session = Session(await self.store.load_session(sms.sender, sms.recipient))
            sms = replace(sms, session=session)
            state = session.state
        result = await self._dispatch(router, sms, state)
        return self.gate.check(result, self.fallback, sms.sms_sid), sms, state

    async def try_message(
        self, sender: str, recipient: str, body: str, *, opted_out: bool = False
    ) -> Trial:
        """What ``body`` from ``sender`` would be answered, without storing or sending anything.

        Handlers do run (an upstream call is made); the sender's stored session is read, not
        written. Rate limits and the loop guard are not applied (they depend on history).
        """
        now = time.time()
        sms = IncomingSms(
            sms_sid=f"try-{uuid.uuid4().hex[:12]}",
            sender=normalise(sender),
            recipient=normalise(recipient),
            body=body,
            received_at=_utc(now),
            sender_raw=sender,
            recipient_raw=recipient,
        )
        decision = DISPATCH
        if self.guards is not None:
            query = self.guards.query(sms)
            changed = (query.opt_change == OPT_OUT and not opted_out) or (
                query.opt_change == OPT_IN and opted_out
            )
            state = GuardState(opted_out, changed, 0, 0, False)
            decision = self.guards.decide(sms, query, state)
        result, sms, session_state = await self._work_out(sms, decision)
        verdict = self.gate.verdict(result.reply) if result.reply else None
        return Trial(
            sender=sms.sender,
            recipient=sms.recipient,
            body=body,
            reply=result.reply,
            rule=result.rule,
            outcome=result.outcome,
            handler_ms=result.handler_ms,
            error=result.error,
            encoding=result.encoding,
            units=result.units,
            parts=result.parts,
            template_id=result.template_id,
            dlt_reason=result.dlt_reason,
            dlt_mode=self.gate.effective_mode,
            dlt_matched=None if verdict is None else verdict.matched,
            guard=result.guard,
            session_state=session_state,
        )

    async def _wait_for_other(self, sid: str, until: float, budget: float) -> Answer | None:
        """Wait for another process's answer; ``None`` when its claim expired (``until``,
        epoch) or this request's budget (monotonic) ran out first."""
        until = max(until, time.time() + 10 * POLL_INTERVAL)  # its lease may outlast the claim
        while time.time() < until and time.monotonic() < budget:
            await asyncio.sleep(POLL_INTERVAL)
            stored = await self._bounded(self.store.lookup(sid), budget)
            if stored is not None and stored.state == "done":
                self.store.record_fetch(sid, time.time())
                return _answer(stored.reply, Outcome.REPLAYED)
        return None

    def _late(self, sms: IncomingSms, rule: str) -> Callable[[asyncio.Future[Any]], None]:
        def finished(task: asyncio.Future[Any]) -> None:
            if task.cancelled() or task.exception() is not None:
                _log_late(sms.sms_sid, rule)(task)
                return
            value = task.result()
            text = value.text if isinstance(value, Reply) else value
            if not isinstance(text, str) or not text:
                log.info("late handler %s for %s finished with no reply", rule, sms.sms_sid)
                return
            queued = asyncio.get_running_loop().create_task(self._send_late(sms, _clean(text)))
            self._late_tasks.add(queued)
            queued.add_done_callback(self._late_tasks.discard)

        return finished

    async def _send_late(self, sms: IncomingSms, text: str) -> None:
        result = self.gate.check(
            _Result(text, None, Outcome.REPLIED, None, None), None, sms.sms_sid
        )
        if result.reply is None:
            log.warning("late reply for %s not sent: %s", sms.sms_sid, result.error)
            return
        queued = OutboxWrite(sms.sender, result.reply, result.template_id, result.parts)
        try:
            await self.store.record_late_reply(sms.sms_sid, result.reply, queued)
        except StoreUnavailable as error:
            log.error("late reply for %s lost: database unavailable: %s", sms.sms_sid, error)
            return
        if self.late_replies is not None:
            log.info("late reply for %s queued for the API", sms.sms_sid)
            self.late_replies()

    def _session_write(self, sms: IncomingSms) -> SessionWrite | None:
        session = sms.session
        if not session.is_dirty:
            return None
        data = json.dumps(session.as_dict(), ensure_ascii=False, default=str)
        ttl = session.ttl if session.ttl is not None else self.session_ttl
        return SessionWrite(sms.sender, sms.recipient, data, time.time() + ttl)

    def _invoke(
        self, rule: Rule, sms: IncomingSms, match: Match
    ) -> tuple[asyncio.Future[Any], concurrent.futures.Future[Any] | None]:
        """Start the handler; a plain function goes to the handler threads (the job is
        returned too: it can still be cancelled while it waits for a thread)."""
        if rule.is_async:
            return asyncio.ensure_future(rule.handler(sms, match)), None  # type: ignore[arg-type]
        context = contextvars.copy_context()  # as asyncio.to_thread does: DLT registry, ...
        job = self._handler_pool.submit(context.run, rule.handler, sms, match)
        return asyncio.wrap_future(job), job

    async def _dispatch(self, router: Router, sms: IncomingSms, state: str | None) -> _Result:
        found = router.route(sms, state)
        if found is None:
            return _Result(None, None, Outcome.NO_REPLY, None, None)
        rule, match = found
        started = time.perf_counter()
        try:
            if self._handler_slots.locked():  # all slots busy: wait, but not past the deadline
                await asyncio.wait_for(self._handler_slots.acquire(), self.deadline)
            else:
                await self._handler_slots.acquire()
        except TimeoutError:
            why = "too many handlers running: no slot within the deadline"
            log.warning("sid=%s %s", sms.sms_sid, why)
            elapsed_ms = (time.perf_counter() - started) * 1000
            return _Result(self.fallback, rule.name, Outcome.HANDLER_NOT_STARTED, elapsed_ms, why)
        dlt.set_active(self.gate.registry)  # Reply.template renders with it (context copied)
        task, thread_job = self._invoke(rule, sms, match)
        task.add_done_callback(lambda _: self._handler_slots.release())
        remaining = max(0.0, self.deadline - (time.perf_counter() - started))
        done, _ = await asyncio.wait({task}, timeout=remaining)
        elapsed_ms = (time.perf_counter() - started) * 1000
        if not done and thread_job is not None and thread_job.cancel():
            why = f"all {self.handler_threads} handler threads were busy: the handler did not start"
            log.warning("sid=%s handler %s did not start: %s", sms.sms_sid, rule.name, why)
            return _Result(self.fallback, rule.name, Outcome.HANDLER_NOT_STARTED, elapsed_ms, why)
        if not done:
            if self.late_replies is not None:
                # The handler keeps running: its reply goes out through the API when ready.
                task.add_done_callback(self._late(sms, rule.name))
            else:
                task.cancel()
                task.add_done_callback(_log_late(sms.sms_sid, rule.name))
            log.warning(
                "handler %s missed the %.2fs deadline for %s: fallback sent",
                rule.name,
                self.deadline,
                sms.sms_sid,
            )
            return _Result(
                self.fallback,
                rule.name,
                Outcome.FALLBACK_TIMEOUT,
                elapsed_ms,
                f"handler ran past the {self.deadline:g}s deadline",
            )
        error = task.exception()
        if error is not None:
            log.error("handler %s failed for %s: %s", rule.name, sms.sms_sid, error, exc_info=error)
            return _Result(
                self.fallback, rule.name, Outcome.FALLBACK_ERROR, elapsed_ms, _describe(error)
            )
        value = task.result()
        if isinstance(value, Reply) and value.error is not None:
            log.warning("rule %s for %s fell back: %s", rule.name, sms.sms_sid, value.error)
            text = _clean(value.text) or None
            return _Result(text, rule.name, Outcome.FALLBACK_ERROR, elapsed_ms, value.error)
        if isinstance(value, Reply):
            value = value.text
        if value is not None and not isinstance(value, str):
            message = f"handler returned {type(value).__name__}, not str, Reply or None"
            log.error("handler %s for %s: %s", rule.name, sms.sms_sid, message)
            return _Result(self.fallback, rule.name, Outcome.FALLBACK_ERROR, elapsed_ms, message)
        reply = _clean(value) if value else None
        outcome = Outcome.REPLIED if reply else Outcome.NO_REPLY
        return _Result(reply, rule.name, outcome, elapsed_ms, None)


def _consume(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: it was reported as "did not answer in time"


def _describe(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= 500 else text[:497] + "..."


def _log_late(sid: str, rule: str) -> Any:
    def report(task: asyncio.Future[Any]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            log.warning("late handler %s for %s failed: %s", rule, sid, _describe(error))
        else:
            log.info("late handler %s for %s finished after the fallback was sent", rule, sid)

    return report


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)
