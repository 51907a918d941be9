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

Why one module (about 500 lines): the claim, the completion, the answers kept while the
database is down and the lease are one protocol with one set of invariants (exactly once,
durable before the answer); the answer cache, the handler runner, the DLT gate and the
answers worked out inside the claim's write are apart (``answers``, ``handlers``, ``gate``,
``fixed_answers``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from exosms.answers import Answer, AnswerCache, answer
from exosms.exotel.applet import AppletRequest, parse_exotel_date
from exosms.fixed_answers import fixed_finish
from exosms.gate import DltGate
from exosms.guards import DISPATCH, OPT_IN, OPT_OUT, Decision, GuardQuery, Guards, GuardState
from exosms.handlers import HandlerRunner
from exosms.metrics import Metrics
from exosms.numbers import normalise
from exosms.outcomes import Outcome
from exosms.result import Result, clean_reply
from exosms.routing import Router, Rule
from exosms.sms import IncomingSms, Match, Session
from exosms.store.base import (
    OWNER_LEASE,
    AnswerPending,
    Claim,
    ClaimLost,
    ClaimStatus,
    Completion,
    Finish,
    NewMessage,
    OutboxWrite,
    SessionWrite,
    Store,
    StoreUnavailable,
)

__all__ = ["Answer", "DltGate", "ReplyEngine", "Trial"]

log = logging.getLogger("exosms.engine")

CLAIM_GRACE = 1.0  # seconds past the reply deadline: a request's whole budget is deadline + this
POLL_INTERVAL = 0.02  # seconds between looks at a SmsSid another process is answering
UPKEEP_INTERVAL = OWNER_LEASE / 5  # lease renewals; retries of answers not yet stored
MIN_WRITE_TIME = 0.25  # seconds an answer's write gets even when the budget is spent
MAX_UNSAVED = 100_000  # answers kept for retry while the database is down (a few MB)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Trial:
    """The answer :meth:`ReplyEngine.try_message` worked out (nothing stored or sent)."""

    sender: str
    recipient: str
    body: str
    result: Result
    dlt_mode: str
    dlt_matched: bool | None  # None: no reply, or the DLT check is off
    session_state: str | None

    def as_dict(self) -> dict[str, Any]:
        """One flat object, as ``/api/try`` and ``exosms rules test --json`` give it."""
        return {
            "sender": self.sender,
            "recipient": self.recipient,
            "body": self.body,
            **asdict(self.result),
            "dlt_mode": self.dlt_mode,
            "dlt_matched": self.dlt_matched,
            "session_state": self.session_state,
        }


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
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.metrics = metrics  # None: nothing counted (no [metrics] token)
        self.router = router
        self.deadline = deadline
        self.fallback = clean_reply(fallback) or None
        self.gate = gate or DltGate()
        self.session_ttl = session_ttl
        self.guards = guards
        # Set when late replies go out through Exotel's API; called after one is queued.
        self.late_replies = late_replies
        self._late_tasks: set[asyncio.Task[None]] = set()
        self.handlers = HandlerRunner(
            deadline=deadline,
            fallback=self.fallback,
            registry=lambda: self.gate.registry,
            max_concurrent=max_concurrent_handlers,
            threads=handler_threads,
            late_reply=self._queue_late if late_replies is not None else None,
        )
        self.owner = uuid.uuid4().hex
        self.answers = AnswerCache(cache_size)
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
        self.handlers.shutdown()

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
            if sid in self.answers.inflight:
                continue  # a retry is storing it right now
            try:
                reply = await self._store_kept(completion, time.monotonic() + self.deadline)
            except ClaimLost as error:
                log.error("sid=%s answer dropped: %s", sid, error)
                continue
            self.answers.remember(sid, reply)
            log.info("sid=%s answer stored after the database came back", sid)
        idle = [sid for sid in self._doubtful if sid not in self.answers.inflight]
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
        # A future (SQLite's writer answers with one) is waited for as it is; a coroutine
        # runs as a task. Either way a timer wakes the wait: no asyncio.wait, no task for a
        # future (9.4 against 4.1 us per call).
        future = call if isinstance(call, asyncio.Future) else asyncio.ensure_future(call)
        limit = max(self.deadline if until is None else until - time.monotonic(), 0.0)
        if not future.done():
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            timer = waiter.get_loop().call_later(limit, _wake, waiter)
            future.add_done_callback(lambda _: _wake(waiter))
            try:
                await waiter
            finally:
                timer.cancel()
                if not future.done():  # it goes on in the background, its outcome unread
                    future.add_done_callback(_consume)
        if not future.done():
            raise StoreUnavailable(f"the database did not answer within {limit:.1f}s")
        return future.result()

    async def replay(self, sid: str) -> Answer | None:
        """The answer for ``sid`` given or being worked out in this process, if any.

        Exotel's GET often arrives while its HEAD is still being answered: it waits for that
        answer here, before its query string is even parsed.
        """
        replayed = self.replay_cached(sid)
        if replayed is not None:
            return replayed
        pending = self.answers.inflight.get(sid)
        if pending is None:
            return None
        try:
            first = await asyncio.shield(pending)
        except Exception:
            return None  # the first request failed: this one tries for itself
        self.store.record_fetch(sid, time.time())
        return self._replayed(first.reply)

    def replay_cached(self, sid: str) -> Answer | None:
        """The answer for ``sid`` if this process has it at hand (no waiting, no database):
        what the HTTP protocol answers a repeat with, without the ASGI round trip."""
        cached = self.answers.replies
        if sid not in cached:
            return None
        self.store.record_fetch(sid, time.time())
        return self._replayed(cached[sid])

    def _replayed(self, reply: str | None) -> Answer:
        if self.metrics is not None:
            self.metrics.replayed()
        return answer(reply, Outcome.REPLAYED)

    async def receive(
        self, request: AppletRequest, method: str, *, queue_reply: bool = False
    ) -> Answer:
        """Answer one applet request (HEAD or GET). Raises ``StoreUnavailable``.

        With ``queue_reply`` (the webhooks), the reply is queued for Exotel's send API in the
        same transaction as the answer: queued once, however often the request comes.
        """
        sid = request.sms_sid
        cached = self.answers.replies
        if sid in cached:
            self.store.record_fetch(sid, time.time())
            return self._replayed(cached[sid])
        pending = self.answers.inflight.get(sid)
        if pending is not None:
            first = await asyncio.shield(pending)
            self.store.record_fetch(sid, time.time())
            return self._replayed(first.reply)
        return await self.answers.share(sid, self._answer_first(request, method, queue_reply))

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
            return answer(await self._store_kept(unsaved, budget), unsaved.outcome)
        if sid in self._doubtful and self._releasing is not None:
            await asyncio.wait((self._releasing,), timeout=self.deadline)
        self._doubtful.discard(sid)  # claimed again below: our own claim is simply retaken
        router = self.router  # one router for the whole request, even if rules reload
        found = None  # routed before the claim: the rule picked, handed on to the handler
        finish = None
        if router.has_fixed_rules and not router.uses_sessions:
            found = router.route(sms, None)
            finish = fixed_finish(
                found, sms, guard_query, self.guards, self.gate, self.fallback, queue_reply
            )
        while True:
            expires = time.time() + self.deadline + CLAIM_GRACE
            claim, completed = await self._claim(message, expires, guard_query, finish, budget)
            if claim.status is ClaimStatus.ANSWERED:
                return self._replayed(claim.reply)
            if claim.status is ClaimStatus.CLAIMED:
                break
            stored = await self._wait_for_other(sid, claim.expires or expires, budget)
            if stored is not None:
                return stored
            if time.monotonic() >= budget:
                raise AnswerPending(f"another exosms process is still answering SmsSid {sid}")
        if claim.taken_over:
            log.warning("sid=%s taken over from a process whose lease ran out", sid)
            if self.metrics is not None:
                self.metrics.retaken()
        if completed is not None:
            return self._answered(sid, claim.reply, completed.result)
        try:
            decision = DISPATCH
            if self.guards is not None and guard_query is not None and claim.guard is not None:
                decision = self.guards.decide(sms, guard_query, claim.guard)
            if decision.action == "suppress":
                log.info("sid=%s no reply: %s", sid, decision.reason)
            result, sms, _ = await self._work_out(sms, decision, router, found)
        except BaseException:
            self._doubtful.add(sid)  # claimed, but no answer worked out: let it go
            raise
        outbox = (
            OutboxWrite(sms.sender, result.reply, result.template_id, result.parts)
            if queue_reply and result.reply
            else None
        )
        completion = Completion(sid, result, time.time(), self._session_write(sms), outbox)
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
        if self.metrics is not None:
            self.metrics.answered(result)
        return answer(reply, result.outcome)

    async def _claim(
        self,
        message: NewMessage,
        expires: float,
        guard_query: GuardQuery | None,
        finish: Finish | None,
        budget: float,
    ) -> tuple[Claim, Completion | None]:
        """Claim the SmsSid; with ``finish`` (no user code makes the answer), store the
        answer in the same write."""
        until = min(budget, time.monotonic() + self.deadline)
        try:
            if finish is None:
                call = self.store.claim(message, self.owner, expires, guard_query)
                return await self._bounded(call, until), None
            both = self.store.claim_and_complete(message, self.owner, expires, guard_query, finish)
            return await self._bounded(both, until)
        except Exception:
            self._doubtful.add(message.sms_sid)  # the claim may be stored: let it go later
            raise

    def _answered(self, sid: str, reply: str | None, result: Result) -> Answer:
        if result.outcome == Outcome.SUPPRESSED:
            log.info("sid=%s no reply: %s", sid, result.guard)
        if self.metrics is not None:
            self.metrics.answered(result)
        return answer(reply, result.outcome)

    async def _work_out(
        self,
        sms: IncomingSms,
        decision: Decision,
        router: Router | None = None,
        found: tuple[Rule, Match] | None = None,
    ) -> tuple[Result, IncomingSms, str | None]:
        """The checked reply a guard decision leads to, the message (with its session when
        the router uses sessions) and the session's state before this message. ``found``:
        the rule and match ``router`` picked already (it uses no sessions)."""
        if decision.action == "suppress":
            return (
                Result(None, None, Outcome.SUPPRESSED, guard=decision.reason),
                sms,
                None,
            )
        if decision.action == "reply":
            assert decision.outcome is not None
            wanted = Result(decision.reply, decision.rule, decision.outcome)
            return self.gate.check(wanted, None, sms.sms_sid), sms, None
        router = router or self.router  # one router for the whole request
        state = None
        if router.uses_sessions:
            session = Session(await self.store.load_session(sms.sender, sms.recipient))
            sms = replace(sms, session=session)
            state = session.state
        result = await self.handlers.run(router, sms, state, found)
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
            result=result,
            dlt_mode=self.gate.effective_mode,
            dlt_matched=None if verdict is None else verdict.matched,
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
                return answer(stored.reply, Outcome.REPLAYED)
        return None

    def _queue_late(self, sms: IncomingSms, text: str) -> None:
        queued = asyncio.get_running_loop().create_task(self._send_late(sms, text))
        self._late_tasks.add(queued)
        queued.add_done_callback(self._late_tasks.discard)

    async def _send_late(self, sms: IncomingSms, text: str) -> None:
        result = self.gate.check(Result(text, None, Outcome.REPLIED), None, sms.sms_sid)
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


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _consume(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: it was reported as "did not answer in time"


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)
