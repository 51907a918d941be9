"""Answers no user code makes (a rules file's fixed replies): worked out inside the claim's
own write, so that such an SMS costs the store one write and one fsync, not two.

The rule is chosen before the claim (routing reads nothing stored when no session is used);
the guards' decision, which needs the sender's standing, and the DLT check are made by
``finish`` once the SmsSid is claimed, in the store's transaction (on SQLite, its writer
thread): quick, pure, and nothing to wait for.
"""

from __future__ import annotations

import time

from exosms.gate import DltGate
from exosms.guards import DISPATCH, GuardQuery, Guards, GuardState
from exosms.handlers import fixed_result
from exosms.outcomes import Outcome
from exosms.result import Result
from exosms.routing import Rule
from exosms.sms import IncomingSms, Match
from exosms.store.base import Completion, Finish, OutboxWrite


def fixed_finish(
    found: tuple[Rule, Match] | None,
    sms: IncomingSms,
    guard_query: GuardQuery | None,
    guards: Guards | None,
    gate: DltGate,
    fallback: str | None,
    queue_reply: bool,
) -> Finish | None:
    """How to work out ``sms``'s answer inside the claim's write from ``found`` (what a
    router without sessions picked for it), or ``None`` when user code makes it: the claim
    and the answer then go as two writes."""
    if found is None:
        dispatched = Result(None, None, Outcome.NO_REPLY)
    else:
        rule, match = found
        fixed = fixed_result(rule, sms, match, fallback)
        if fixed is None:
            return None  # user code, or a failure the usual way reports
        dispatched = fixed

    def finish(state: GuardState | None) -> Completion:
        decision = DISPATCH
        if guards is not None and guard_query is not None and state is not None:
            decision = guards.decide(sms, guard_query, state)
        if decision.action == "suppress":
            result = Result(None, None, Outcome.SUPPRESSED, guard=decision.reason)
        elif decision.action == "reply":
            assert decision.outcome is not None
            wanted = Result(decision.reply, decision.rule, decision.outcome)
            result = gate.check(wanted, None, sms.sms_sid)
        else:
            result = gate.check(dispatched, fallback, sms.sms_sid)
        outbox = (
            OutboxWrite(sms.sender, result.reply, result.template_id, result.parts)
            if queue_reply and result.reply
            else None
        )
        return Completion(sms.sms_sid, result, time.time(), None, outbox)

    return finish
