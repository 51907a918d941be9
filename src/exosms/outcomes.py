"""How a message was answered: the one list, stored in ``messages.outcome``.

Every place that names an outcome (the engine, the guards, the inbox filters, the API's
OpenAPI enum, the labels and colours of the pages) takes it from here; a test checks that
each member has a label, a colour, a filter and an OpenAPI entry.
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    REPLIED = "replied"
    NO_REPLY = "no_reply"
    OPTED_OUT = "opted_out"  # STOP (or another opt-out word): recorded, confirmed once
    OPTED_IN = "opted_in"  # START after an opt-out
    SUPPRESSED = "suppressed"  # a guard allowed no reply (opted out, rate-limited, loop, ...)
    FALLBACK_TIMEOUT = "fallback_timeout"
    HANDLER_NOT_STARTED = "handler_not_started"  # no free handler slot within the deadline
    FALLBACK_ERROR = "fallback_error"
    DLT_REFUSED = "dlt_refused"  # matched no approved template in enforce mode
    TOO_LONG = "too_long"  # needed more SMS parts than max_reply_parts
    PENDING = "pending"  # not answered yet (or never, after a crash): a filter, never stored
    REPLAYED = "replayed"  # how a repeated request was answered: never stored


# What the inbox and the API filter on: every outcome a message can have in the database.
STORED_OUTCOMES: tuple[Outcome, ...] = tuple(o for o in Outcome if o is not Outcome.REPLAYED)
