"""How one message is answered: the one record the engine, the gate and the store share."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)  # not frozen: built per request; frozen init is 3x slower
class Result:
    """The reply worked out for one message, and why.

    The engine fills it in phases (guards, handler, DLT gate); the store writes it as the
    message's answer (:class:`exosms.store.base.Completion`); ``exosms rules test`` and
    ``/api/try`` show it (:class:`exosms.engine.Trial`).
    """

    reply: str | None  # None: no reply
    rule: str | None
    outcome: str
    handler_ms: float | None = None
    error: str | None = None
    encoding: str | None = None  # of the reply, as an SMSC splits it
    units: int | None = None
    parts: int | None = None
    template_id: str | None = None  # the DLT template the reply matches
    dlt_reason: str | None = None  # why it matches none, or what the check warned about
    guard: str | None = None  # the guard that allowed no reply
    refused_reply: str | None = None  # the reply the gate refused (DLT, parts), not sent


def clean_reply(text: str) -> str:
    """``text`` repaired so that it can be stored and sent as it is.

    A handler may return text that UTF-8 cannot carry (lone surrogates) or that a database
    cannot hold (NUL): the same repaired text is stored and sent.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", errors="replace").decode("utf-8")
    return text.replace("\x00", "\ufffd") if "\x00" in text else text
