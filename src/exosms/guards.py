"""Guard rails on replies: opt-out and opt-in, reply caps, loops, machine senders.

The decisions here are pure. The counts they rest on are read in the same database
transaction that claims the SmsSid, so they hold across restarts and across server
processes sharing a database.
"""

from __future__ import annotations

from dataclasses import dataclass

from exosms.config import GuardSettings
from exosms.numbers import is_phone_number
from exosms.outcomes import Outcome
from exosms.routing import Router
from exosms.sms import IncomingSms, Match

TEN_MINUTES = 600.0
ONE_DAY = 86_400.0
OPT_OUT = "out"
OPT_IN = "in"


@dataclass(slots=True)
class GuardQuery:
    """What the claim transaction should apply and count for this message."""

    opt_change: str | None  # OPT_OUT, OPT_IN or None
    loop_window: float


@dataclass(slots=True)
class GuardState:
    """The sender's standing, read in the claim transaction (this message excluded)."""

    opted_out: bool
    opt_changed: bool
    replies_10min: int
    replies_day: int
    repeated: bool


@dataclass(slots=True)
class Decision:
    action: str  # "dispatch" | "reply" | "suppress"
    reply: str | None = None
    outcome: str | None = None
    reason: str | None = None  # why a reply was suppressed
    rule: str | None = None


DISPATCH = Decision("dispatch")


class Guards:
    """Decides, before any handler runs, whether this message may be answered."""

    def __init__(self, settings: GuardSettings) -> None:
        self.settings = settings
        # Opt-out words are matched with the same Router users write rules with.
        self.keywords = Router()

        @self.keywords.keyword(*settings.optout_keywords, only=True, name="opt_out")
        async def opt_out(sms: IncomingSms, match: Match) -> None:
            return None

        @self.keywords.keyword(*settings.optin_keywords, only=True, name="opt_in")
        async def opt_in(sms: IncomingSms, match: Match) -> None:
            return None

    def query(self, sms: IncomingSms) -> GuardQuery:
        found = self.keywords.route(sms)
        change = None
        if found is not None:
            change = OPT_OUT if found[0].name == "opt_out" else OPT_IN
        return GuardQuery(change, self.settings.loop_window_seconds)

    def decide(self, sms: IncomingSms, query: GuardQuery, state: GuardState) -> Decision:
        s = self.settings
        if query.opt_change == OPT_OUT:
            reply = s.optout_reply if state.opt_changed and s.optout_reply else None
            return Decision("reply", reply, Outcome.OPTED_OUT, rule="opt_out")
        if query.opt_change == OPT_IN and state.opt_changed:
            return Decision("reply", s.optin_reply or None, Outcome.OPTED_IN, rule="opt_in")
        if state.opted_out:
            return Decision("suppress", reason="opted_out")
        if not s.reply_to_non_numbers and not is_phone_number(sms.sender):
            return Decision("suppress", reason="sender_type")
        if state.repeated:
            return Decision("suppress", reason="loop")
        if s.replies_per_10min and state.replies_10min >= s.replies_per_10min:
            return Decision("suppress", reason="rate_limited")
        if s.replies_per_day and state.replies_day >= s.replies_per_day:
            return Decision("suppress", reason="rate_limited")
        return DISPATCH
