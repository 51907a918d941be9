"""Plain value types that flow through exosms: the incoming SMS, the match, the reply."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class IncomingSms:
    """One SMS as Exotel delivered it, with numbers normalised.

    ``sender`` and ``recipient`` are E.164 (``+919052161119``) when they are phone numbers,
    and the raw text otherwise (short codes such as ``56070``, alphanumeric senders such as
    ``VM-ACMEIN``). The untouched values are kept in ``sender_raw`` and ``recipient_raw``.
    """

    sms_sid: str
    sender: str
    recipient: str
    body: str
    received_at: datetime
    exotel_date: datetime | None = None
    sender_raw: str = ""
    recipient_raw: str = ""
    date_raw: str = ""


@dataclass(frozen=True, slots=True)
class Match:
    """Why a rule answered: the rule's name, the keyword seen, the rest of the text, groups."""

    rule: str
    keyword: str | None = None
    rest: str = ""
    groups: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Reply:
    """The text to send back. An empty text means "no reply"."""

    text: str

    @property
    def is_empty(self) -> bool:
        return self.text == ""

    @classmethod
    def template(cls, template: str, *values: str, **named: str) -> Reply:
        """Render a registered DLT template (by id or name), filling its variables in order.

        ``Reply.template("1107161234567890123", name="Ravi", order="12")`` checks each value
        against its slot (length, type, whitelist) and raises
        :class:`~exosms.dlt.TemplateError` at once when one does not fit, so a handler's
        reply complies by construction.
        """
        from exosms.dlt import TemplateError, active_registry

        registry = active_registry()
        if registry is None:
            raise TemplateError("no DLT template registry is active (use exosms.dlt.using)")
        return cls(registry.render(template, *values, **named))
