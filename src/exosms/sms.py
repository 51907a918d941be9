"""Plain value types that flow through exosms: the incoming SMS, the match, the reply."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class Session(MutableMapping[str, Any]):
    """A sender's conversation memory: JSON-able key-value pairs that expire.

    Kept per sender and Exotel number, stored in the database with the message's answer,
    so it survives restarts. ``session.state`` is the key rules use for short flows.
    """

    def __init__(self, data: Mapping[str, Any] | None = None, *, available: bool = True) -> None:
        self._data: dict[str, Any] = dict(data or {})
        self._available = available
        self.is_dirty = False
        self.ttl: float | None = None  # seconds; None: the server's session_ttl

    @classmethod
    def unavailable(cls) -> Session:
        """A session that cannot be used (the router does not use sessions)."""
        return cls(available=False)

    def _check(self) -> None:
        if not self._available:
            raise RuntimeError(
                "sms.session is not loaded: create the router with Router(sessions=True)"
            )

    def __getitem__(self, key: str) -> Any:
        self._check()
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._check()
        self._data[key] = value
        self.is_dirty = True

    def __delitem__(self, key: str) -> None:
        self._check()
        del self._data[key]
        self.is_dirty = True

    def __iter__(self) -> Iterator[str]:
        self._check()
        return iter(self._data)

    def __len__(self) -> int:
        self._check()
        return len(self._data)

    @property
    def state(self) -> str | None:
        """The conversation's state (``None``: none), as rules' ``state`` match it."""
        value = self.get("state")
        return None if value is None else str(value)

    @state.setter
    def state(self, value: str | None) -> None:
        if value is None:
            self.pop("state", None)
        else:
            self["state"] = value

    def as_dict(self) -> dict[str, Any]:
        """A copy of the session's values."""
        return dict(self._data)


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
    session: Session = field(default_factory=Session.unavailable, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Match:
    """Why a rule answered: the rule's name, the keyword seen, the rest of the text, groups."""

    rule: str
    keyword: str | None = None
    rest: str = ""
    groups: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Reply:
    """The text to send back. An empty text means "no reply".

    ``error`` marks a fallback: the reply logic could not do its job (an upstream URL
    failed, say) and says why; the message is stored as ``fallback_error`` with that reason.
    """

    text: str
    error: str | None = None

    @property
    def is_empty(self) -> bool:
        """No text: the message gets no reply."""
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
